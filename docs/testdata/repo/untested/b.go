package untested

func B() {}
