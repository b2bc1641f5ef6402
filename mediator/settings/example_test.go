package settings_test

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

// A program's settings: the mediator's, squashed, plus its own keys.
type AppSettings struct {
	settings.Mediator `mapstructure:",squash"`
	CHT               struct {
		URL      string          `mapstructure:"url"`      // MEDIATOR_CHT_URL
		Password settings.Secret `mapstructure:"password"` // MEDIATOR_CHT_PASSWORD
	} `mapstructure:"cht"`
}

func ExampleLoad() {
	os.Setenv("MEDIATOR_OPENHIM_PASSWORD", "s3cret")
	os.Setenv("MEDIATOR_CHT_URL", "http://cht:5988")
	os.Setenv("MEDIATOR_AUTH_PASSWORD", "route-s3cret") // with the file's auth.username
	defer os.Unsetenv("MEDIATOR_AUTH_PASSWORD")
	defer os.Unsetenv("MEDIATOR_OPENHIM_PASSWORD")
	defer os.Unsetenv("MEDIATOR_CHT_URL")

	cfg := AppSettings{Mediator: settings.Default()}
	if err := settings.Load("testdata/example.yaml", &cfg); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Listen, cfg.OpenHIM.URL, cfg.OpenHIM.Auth, cfg.HeartbeatInterval)
	fmt.Println(cfg.CHT.URL)
	fmt.Println("password:", cfg.OpenHIM.Password) // redacted when printed or logged

	var mc mediator.Config
	if err := cfg.Apply(&mc); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(mc.OpenHIM.Password == "s3cret", mc.InstallChannels, mc.Auth)

	bad := AppSettings{Mediator: settings.Default()}
	fmt.Println(settings.Load("testdata/unknown.yaml", &bad))
	// Output:
	// 127.0.0.1:9000 https://openhim-core:8080 token 5s
	// http://cht:5988
	// password: REDACTED
	// true true basic (username "openhim-route")
	// settings: testdata/unknown.yaml: unknown key(s) ["openhim.urll"]
}

// The command line the example mediators share: --config, --log-level,
// --version, --help and the program's --print-* flags. A program parses it
// once, at the top of its run function.
func ExampleCLI() {
	os.Setenv("MEDIATOR_AUTH_PASSWORD", "route-s3cret") // with the file's auth.username
	defer os.Unsetenv("MEDIATOR_AUTH_PASSWORD")
	run := func(args ...string) error {
		s := AppSettings{Mediator: settings.Default()}
		cli := settings.NewCLI("my-mediator", "1.0.0", &s)
		cli.Print("listen", "print the listen address, and exit", func(w io.Writer) error {
			_, err := fmt.Fprintln(w, "listening on", s.Listen)
			return err // printing needs no cht.url
		})
		if done, err := cli.Parse(args, os.Stdout, nil); done || err != nil {
			return err
		}
		return errors.New("would serve on " + s.Listen)
	}
	fmt.Println(run("--version"))
	fmt.Println(run("--config", "testdata/example.yaml", "--print-listen"))
	fmt.Println(run("--log-level", "loud"))
	fmt.Println(run("--config", "testdata/example.yaml"))
	// Output:
	// my-mediator 1.0.0
	// <nil>
	// listening on 127.0.0.1:9000
	// <nil>
	// --log-level "loud": want debug, info, warn or error
	// would serve on 127.0.0.1:9000
}
