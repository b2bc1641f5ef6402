// Package settings loads a mediator's configuration from a YAML or JSON
// file and MEDIATOR_* environment variables with viper, into a plain
// struct that is then validated.
//
// [Mediator] holds what package mediator needs; programs embed it, squashed,
// in their own struct to add settings of their own (MEDIATOR_CHT_URL...):
//
//	cfg := AppSettings{Mediator: settings.Default()}
//	if err := settings.Load(*configPath, &cfg); err != nil {
//		return err // names the offending key
//	}
//	mc := mediator.Config{Definition: def, Handler: h}
//	if err := cfg.Apply(&mc); err != nil {
//		return err // names the offending key
//	}
//
// # Keys and variables
//
// Keys are the mapstructure tags, nested with ".": listen, public_host, openhim.url,
// openhim.username, openhim.password, openhim.auth,
// openhim.insecure_skip_verify, openhim.ca_file, openhim.cert_file,
// openhim.key_file, openhim.timeout, openhim.core_version,
// heartbeat_interval, install_channels, restore_channels, max_body_bytes, shutdown_timeout,
// redact_headers, log_level, auth.username, auth.password, auth.token,
// auth.disabled, tls.cert_file, tls.key_file, tls.client_ca_file, metrics_listen. Each is read from the environment as MEDIATOR_ followed
// by the key upper-cased with "_" for "." ([EnvName]): MEDIATOR_LISTEN,
// MEDIATOR_OPENHIM_URL, MEDIATOR_OPENHIM_PASSWORD, MEDIATOR_HEARTBEAT_INTERVAL.
// The environment wins over the file, even when a variable is set but
// empty (MEDIATOR_CHT_USERNAME= clears the file's value); the file wins
// over the defaults of [Default]. viper is used only here.
//
// # Command line
//
// [CLI] is the command line the example mediators share: --config,
// --log-level, --version, --help (every key with its variable and default)
// and the program's own --print-* flags. Its Parse loads the settings and
// logs the effective configuration, secrets redacted, at start-up.
//
// # Inbound authentication
//
// auth.username and auth.password make the mediator require HTTP basic
// authentication (what an OpenHIM route with a username and password
// sends), auth.token a bearer token (what a CHT outbound destination with
// header auth sends as "Authorization: Bearer <token>"), and
// tls.client_ca_file a client certificate signed by those CAs (mutual TLS
// over the tls.cert_file and tls.key_file certificate). Any one of them lets
// a request in; /healthz and /readyz stay open, and /metrics requires them
// too unless metrics_listen serves it on a separate address.
// [Mediator.InboundAuth] gives what the OpenHIM routes and the CHT outbound
// configuration must send. [Mediator.Validate] requires one of them, so
// that a program that serves does not start with routes anyone who reaches
// listen can call; auth.disabled: true lets it, where nothing but core can
// reach listen. A --print-* flag needs none.
package settings
