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
//	cfg.Apply(&mc)
//
// # Keys and variables
//
// Keys are the mapstructure tags, nested with ".": listen, openhim.url,
// openhim.username, openhim.password, openhim.auth,
// openhim.insecure_skip_verify, openhim.ca_file, openhim.cert_file,
// openhim.key_file, openhim.timeout, openhim.core_version,
// heartbeat_interval, install_channels, max_body_bytes, shutdown_timeout,
// redact_headers. Each is read from the environment as MEDIATOR_ followed
// by the key upper-cased with "_" for "." ([EnvName]): MEDIATOR_LISTEN,
// MEDIATOR_OPENHIM_URL, MEDIATOR_OPENHIM_PASSWORD, MEDIATOR_HEARTBEAT_INTERVAL.
// The environment wins over the file; the file over the defaults of
// [Default]. viper is used only here.
package settings
