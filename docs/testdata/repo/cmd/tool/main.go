package main

import "flag"

func main() {
	flag.Bool("print-config", false, "print")
	flag.Parse()
}
