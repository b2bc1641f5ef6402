package openhim

import (
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type cfgUpstream struct {
	URL    string  `openhim:"url" display:"URL"`
	Weight float64 `openhim:"weight"`
	Tags   []string
}

type lcTestConfig struct {
	UpstreamURL string            `openhim:"upstreamUrl" display:"Upstream URL" description:"Where requests go"`
	APIKey      string            `openhim:"apiKey,password"`
	Token       string            `openhim:"token,password"`
	Notes       string            `openhim:"notes,bigstring"`
	Mode        string            `openhim:"mode" values:"fast,safe"`
	Retries     int               `openhim:"retries"`
	Ratio       float32           `json:"ratio"`
	Port        uint16            // param "port" from the field name
	Enabled     bool              `openhim:"enabled"`
	Headers     map[string]string `openhim:"headers"`
	Targets     []cfgUpstream     `openhim:"targets"`
	Primary     cfgUpstream       `openhim:"primary"`
	Timeout     time.Duration     `openhim:"timeout"`
	Codes       []int             `openhim:"codes"`
	Ignored     string            `openhim:"-"`
	unexported  string
}

func TestConfigDefsOf(t *testing.T) {
	defs, err := ConfigDefsOf(&lcTestConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := []ConfigDef{{Param: "url", DisplayName: "URL", Type: ConfigString}, {Param: "weight", Type: ConfigNumber},
		{Param: "tags", Type: ConfigString, Array: true}}
	want := []ConfigDef{
		{Param: "upstreamUrl", DisplayName: "Upstream URL", Description: "Where requests go", Type: ConfigString},
		{Param: "apiKey", Type: ConfigPassword},
		{Param: "token", Type: ConfigPassword},
		{Param: "notes", Type: ConfigBigString},
		{Param: "mode", Type: ConfigOption, Values: []string{"fast", "safe"}},
		{Param: "retries", Type: ConfigNumber},
		{Param: "ratio", Type: ConfigNumber},
		{Param: "port", Type: ConfigNumber},
		{Param: "enabled", Type: ConfigBool},
		{Param: "headers", Type: ConfigMap},
		{Param: "targets", Type: ConfigStruct, Array: true, Template: tmpl},
		{Param: "primary", Type: ConfigStruct, Template: tmpl},
		{Param: "timeout", Type: ConfigString},
		{Param: "codes", Type: ConfigNumber, Array: true},
	}
	if !reflect.DeepEqual(defs, want) {
		got, _ := json.MarshalIndent(defs, "", " ")
		t.Fatalf("defs:\n%s", got)
	}
	_ = lcTestConfig{}.unexported
}

func TestConfigDefsOfErrors(t *testing.T) {
	type nested struct {
		In struct{ X struct{ Y string } }
	}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"not a struct", 5, "needs a struct"},
		{"nil", nil, "needs a struct"},
		{"nested struct", nested{}, "may not contain a struct"},
		{"unsupported type", struct{ C chan int }{}, "unsupported type"},
		{"map of ints", struct{ M map[string]int }{}, "unsupported type"},
		{"nested slices", struct{ S [][]string }{}, "nested slices"},
		{"option without values", struct {
			M string `openhim:"m,option"`
		}{}, "values tag"},
		{"bad tag option", struct {
			M string `openhim:"m,huge"`
		}{}, "unknown openhim tag option"},
		{"tag option on number", struct {
			N int `openhim:"n,bigstring"`
		}{}, "needs a string field"},
		{"duplicate param", struct {
			A string `openhim:"x"`
			B string `openhim:"x"`
		}{}, "both use param"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConfigDefsOf(tt.v)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDecodeConfig(t *testing.T) {
	defaults := lcTestConfig{UpstreamURL: "http://default", Retries: 1, Mode: "fast"}
	tests := []struct {
		name      string
		raw       string
		want      func(c *lcTestConfig)
		errFields []string
	}{
		{name: "empty keeps defaults", raw: `{}`, want: func(c *lcTestConfig) {}},
		{name: "all types", raw: `{"upstreamUrl":"http://x","apiKey":"k1","token":"t1","notes":"n","mode":"safe","retries":5,
			"ratio":0.5,"port":8080,"enabled":true,"headers":{"A":"1"},"targets":[{"url":"u1","weight":2,"tags":["a"]}],
			"primary":{"url":"p"},"timeout":"1m30s","codes":[200,201]}`,
			want: func(c *lcTestConfig) {
				c.UpstreamURL, c.APIKey, c.Token, c.Notes, c.Mode, c.Retries = "http://x", "k1", "t1", "n", "safe", 5
				c.Ratio, c.Port, c.Enabled, c.Headers = 0.5, 8080, true, map[string]string{"A": "1"}
				c.Targets = []cfgUpstream{{URL: "u1", Weight: 2, Tags: []string{"a"}}}
				c.Primary = cfgUpstream{URL: "p"}
				c.Timeout = 90 * time.Second
				c.Codes = []int{200, 201}
			}},
		{name: "core's validation", raw: `{"upstreamUrl":1,"mode":"slow","enabled":"yes","headers":{"A":1},"unknown":"x","codes":200}`,
			errFields: []string{"config.codes", "config.enabled", "config.headers.A", "config.mode", "config.unknown", "config.upstreamUrl"}},
		{name: "Go type checks", raw: `{"retries":1.5,"port":70000,"timeout":"soon","primary":{"weight":"heavy"}}`,
			errFields: []string{"config.port", "config.primary.weight", "config.retries", "config.timeout"}},
		{name: "struct with unknown key", raw: `{"primary":{"nope":1}}`, errFields: []string{"config.primary.nope"}},
		{name: "null is not a string", raw: `{"upstreamUrl":null}`, errFields: []string{"config.upstreamUrl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw map[string]any
			if err := json.Unmarshal([]byte(tt.raw), &raw); err != nil {
				t.Fatal(err)
			}
			checkDecoded(t, raw, nil, defaults, tt.want, tt.errFields)
		})
	}
}

// checkDecoded decodes raw with defs over defaults and checks the result:
// the error names errFields and leaves defaults, or there is none and the
// config is defaults changed by want.
func checkDecoded(t *testing.T, raw map[string]any, defs []ConfigDef, defaults lcTestConfig, want func(*lcTestConfig), errFields []string) {
	t.Helper()
	got := defaults
	err := DecodeConfig(raw, defs, &got)
	if errFields != nil {
		if f := lcFields(err); !slices.Equal(f, errFields) {
			t.Fatalf("DecodeConfig error fields = %v, want %v (err %v)", f, errFields, err)
		}
		if !reflect.DeepEqual(got, defaults) {
			t.Errorf("dst modified on error: %+v", got)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	w := defaults
	want(&w)
	if !reflect.DeepEqual(got, w) {
		t.Errorf("got  %+v\nwant %+v", got, w)
	}
}

// TestConfigNullAsCoreAcceptsIt: null is accepted exactly where core
// accepts it when an administrator saves a config (PUT
// /mediators/:urn/config, setConfig) or a mediator registers defaults
// (addMediator); both call validateConfig in src/api/mediators.js, the same
// in core 4.0.5 and 8.5.0. Accepted nulls mean "not set": the field keeps
// its default (an array element is the zero value). Each case is checked
// with DecodeConfig and with Definition.Validate.
func TestConfigNullAsCoreAcceptsIt(t *testing.T) {
	defaults := lcTestConfig{UpstreamURL: "http://default", Retries: 1, Mode: "fast",
		Headers: map[string]string{"X-Default": "1"}, Primary: cfgUpstream{URL: "http://primary", Weight: 1, Tags: []string{"d"}}}
	tests := []struct {
		name      string
		raw       string
		want      func(c *lcTestConfig)
		errFields []string
	}{
		// validateConfigField, case 'map': typeof null is 'object', and
		// for (k in null) checks no value.
		{name: "null map keeps its default", raw: `{"headers":null,"retries":4}`,
			want: func(c *lcTestConfig) { c.Retries = 4 }},
		// validateConfigField, case 'struct': typeof null is 'object', and
		// for (paramField in null) checks no key.
		{name: "null struct keeps its default", raw: `{"primary":null}`, want: func(c *lcTestConfig) {}},
		// validateConfigField, case 'struct': only the keys are checked
		// against the template, never the values.
		{name: "null struct fields keep their defaults", raw: `{"primary":{"url":null,"weight":3,"tags":null}}`,
			want: func(c *lcTestConfig) { c.Primary.Weight = 3 }},
		// validateConfig: def.array checks each element with
		// validateConfigField, case 'struct', as above.
		{name: "null element of an array of structs is a zero struct", raw: `{"targets":[null,{"url":"u"}]}`,
			want: func(c *lcTestConfig) { c.Targets = []cfgUpstream{{}, {URL: "u"}} }},
		// validateConfigField, case 'number': typeof null !== 'number'.
		{name: "null number", raw: `{"retries":null}`, errFields: []string{"config.retries"}},
		// validateConfigField, case 'bool': typeof null !== 'boolean'.
		{name: "null bool", raw: `{"enabled":null}`, errFields: []string{"config.enabled"}},
		// validateConfigField, cases 'string', 'bigstring' and 'password':
		// typeof null !== 'string' (a Duration is a string param).
		{name: "null strings", raw: `{"upstreamUrl":null,"notes":null,"apiKey":null,"timeout":null}`,
			errFields: []string{"config.apiKey", "config.notes", "config.timeout", "config.upstreamUrl"}},
		// validateConfigField, case 'option': def.values.indexOf(null) === -1.
		{name: "null option", raw: `{"mode":null}`, errFields: []string{"config.mode"}},
		// validateConfig: def.array needs utils.typeIsArray, false for null.
		{name: "null array", raw: `{"targets":null,"codes":null}`, errFields: []string{"config.codes", "config.targets"}},
		// validateConfigField, case 'number', for each element of an array.
		{name: "null element of an array of numbers", raw: `{"codes":[200,null]}`, errFields: []string{"config.codes[1]"}},
		// validateConfigField, case 'map': each value must be a string.
		{name: "null value in a map", raw: `{"headers":{"A":null}}`, errFields: []string{"config.headers.A"}},
	}
	defs, err := ConfigDefsOf(lcTestConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw map[string]any
			if err := json.Unmarshal([]byte(tt.raw), &raw); err != nil {
				t.Fatal(err)
			}
			d := lcDefinition("urn:mediator:null")
			d.ConfigDefs, d.Config = defs, raw
			if f := lcFields(d.Validate(8)); !slices.Equal(f, tt.errFields) {
				t.Errorf("Validate error fields = %v, want %v", f, tt.errFields)
			}
			checkDecoded(t, raw, defs, defaults, tt.want, tt.errFields)
		})
	}
}

// TestDecodeConfigOfGoTypes: values given as Go types are checked as the
// JSON they encode to, as core checks what it receives (src/api/
// mediators.js, validateConfig): a map[string]string for a map param and a
// []int for an array param pass.
func TestDecodeConfigOfGoTypes(t *testing.T) {
	got := lcTestConfig{}
	raw := map[string]any{"headers": map[string]string{"A": "1"}, "codes": []int{200, 201}}
	if err := DecodeConfig(raw, nil, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Headers, map[string]string{"A": "1"}) || !slices.Equal(got.Codes, []int{200, 201}) {
		t.Errorf("got headers %v, codes %v", got.Headers, got.Codes)
	}
	err := DecodeConfig(map[string]any{"headers": map[string]int{"A": 1}}, nil, &got)
	if f := lcFields(err); !slices.Equal(f, []string{"config.headers.A"}) {
		t.Errorf("error fields = %v, want config.headers.A (err %v)", f, err)
	}
}

func TestDecodeConfigNeverLeaksPasswords(t *testing.T) {
	const secret = "s3cr3t-Value"
	raw := map[string]any{"apiKey": 5.0, "token": []any{secret}, "mode": secret, "notes": map[string]any{"x": secret},
		"primary": map[string]any{"bogus": secret}, "headers": map[string]any{"h": []any{secret}}}
	var c lcTestConfig
	err := DecodeConfig(raw, nil, &c)
	if err == nil {
		t.Fatal("want error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error leaks a value: %v", err)
	}
	if got, want := lcFields(err), []string{"config.apiKey", "config.headers.h", "config.mode", "config.notes", "config.primary.bogus", "config.token"}; !slices.Equal(got, want) {
		t.Fatalf("fields = %v, want %v", got, want)
	}
}

func TestConfigOfRoundTrip(t *testing.T) {
	in := lcTestConfig{UpstreamURL: "http://x", APIKey: "k", Token: "t", Mode: "safe", Retries: 3, Ratio: 0.25, Port: 1,
		Enabled: true, Headers: map[string]string{"a": "b"}, Targets: []cfgUpstream{{URL: "u", Weight: 1, Tags: []string{}}},
		Primary: cfgUpstream{URL: "p", Tags: []string{"x"}}, Timeout: 2 * time.Second, Codes: []int{1, 2}}
	m, err := configOf(in)
	if err != nil {
		t.Fatal(err)
	}
	defs, _ := ConfigDefsOf(in)
	if err := validateConfig(defs, m); err != nil {
		t.Fatalf("configOf output fails core's validation: %v", err)
	}
	// through JSON, as core stores and returns it
	b, _ := json.Marshal(m)
	var back map[string]any
	_ = json.Unmarshal(b, &back)
	var out lcTestConfig
	if err := DecodeConfig(back, defs, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n in %+v\nout %+v", in, out)
	}
	if m["apiKey"] != "k" {
		t.Errorf("password default must be its value for core, got %v", m["apiKey"])
	}
}

func TestTypedConfig(t *testing.T) {
	var logBuf strings.Builder
	tc, err := NewTypedConfig(lcTestConfig{UpstreamURL: "http://default", Retries: 1}, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if tc.Load().UpstreamURL != "http://default" || tc.Version() != 0 {
		t.Fatalf("initial = %+v", tc.Load())
	}
	if d := tc.DefaultConfig(); d["upstreamUrl"] != "http://default" || d["retries"] != 1.0 {
		t.Errorf("DefaultConfig = %v", d)
	}
	type change struct{ old, new lcTestConfig }
	var changes []change
	tc.Subscribe(func(old, new lcTestConfig) { changes = append(changes, change{old, new}) })

	tc.OnConfig(nil, map[string]any{"upstreamUrl": "http://a", "apiKey": "pw-1"})
	tc.OnConfig(nil, map[string]any{"retries": 7.0}) // upstreamUrl removed in core: back to the default
	tc.OnConfig(nil, map[string]any{"retries": "many", "apiKey": "pw-2"})

	if len(changes) != 2 {
		t.Fatalf("changes = %d, want 2", len(changes))
	}
	if changes[0].old.UpstreamURL != "http://default" || changes[0].new.UpstreamURL != "http://a" || changes[0].new.APIKey != "pw-1" {
		t.Errorf("change 0 = %+v", changes[0])
	}
	if changes[1].new.UpstreamURL != "http://default" || changes[1].new.Retries != 7 || changes[1].new.APIKey != "" {
		t.Errorf("change 1 = %+v", changes[1])
	}
	if got := tc.Load(); got.Retries != 7 || tc.Version() != 2 {
		t.Errorf("bad update must keep the previous config: %+v (version %d)", got, tc.Version())
	}
	if err := tc.Err(); err == nil || !errors.Is(err, ErrInvalid) {
		t.Errorf("Err() = %v", err)
	}
	if strings.Contains(logBuf.String(), "pw-2") || !strings.Contains(logBuf.String(), "config.retries") {
		t.Errorf("log = %s", logBuf.String())
	}
}

// A config core accepted with a null map or struct (src/api/mediators.js,
// setConfig and validateConfigField: typeof null is 'object') and pushes in
// a heartbeat answer is applied, those params having their defaults, rather
// than rejected at every push.
func TestTypedConfigAppliesNullFromCore(t *testing.T) {
	var logBuf strings.Builder
	defaults := lcTestConfig{Headers: map[string]string{"X-Default": "1"}, Primary: cfgUpstream{URL: "http://primary"}}
	tc, err := NewTypedConfig(defaults, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tc.OnConfig(nil, map[string]any{"headers": map[string]any{"A": "1"}, "primary": map[string]any{"url": "http://other"}})
	tc.OnConfig(nil, map[string]any{"headers": nil, "primary": nil, "retries": 4.0})
	if err := tc.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil", err)
	}
	got := tc.Load()
	if tc.Version() != 2 || got.Retries != 4 || !reflect.DeepEqual(got.Headers, defaults.Headers) || !reflect.DeepEqual(got.Primary, defaults.Primary) {
		t.Errorf("config = %+v (version %d), want the defaults of headers and primary and retries 4", got, tc.Version())
	}
	if strings.Contains(logBuf.String(), "rejected") {
		t.Errorf("log = %s", logBuf.String())
	}
}

func TestTypedConfigConcurrent(t *testing.T) {
	tc, err := NewTypedConfig(lcTestConfig{Retries: 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 100 {
				_ = tc.Update(map[string]any{"retries": float64(i*1000 + j), "upstreamUrl": "u"})
			}
		})
		wg.Go(func() {
			for range 100 {
				if c := tc.Load(); c.Retries != 0 && c.UpstreamURL != "u" {
					t.Error("torn read")
				}
			}
		})
	}
	wg.Wait()
	if tc.Version() != 400 {
		t.Errorf("version = %d, want 400", tc.Version())
	}
}

func FuzzDecodeConfig(f *testing.F) {
	f.Add(`{"upstreamUrl":"x","retries":3,"targets":[{"url":"a"}]}`)
	f.Add(`{"headers":{"a":1},"codes":[1.5,null],"primary":[]}`)
	f.Add(`{"port":-1,"timeout":"1h","mode":"safe","ratio":1e300}`)
	defs, err := ConfigDefsOf(lcTestConfig{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var raw map[string]any
		if json.Unmarshal([]byte(s), &raw) != nil {
			return
		}
		var c lcTestConfig
		err := DecodeConfig(raw, defs, &c)
		if err == nil {
			// whatever decodes must pass core's validation
			if verr := validateConfig(defs, raw); verr != nil {
				t.Fatalf("decoded but invalid: %v", verr)
			}
		}
	})
}

func FuzzParseHeartbeatBody(f *testing.F) {
	for _, s := range []string{"", "OK", "ok", " OK\n", "{}", `{"a":1}`, "null", "[]", `"x"`, "{", "Not Found"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := parseHeartbeatBody(b)
		if err == nil && cfg != nil {
			if _, jerr := json.Marshal(cfg); jerr != nil {
				t.Fatalf("config not re-encodable: %v", jerr)
			}
		}
	})
}

// A mediator rolled back to a lower version gets the config of the newer
// one: core keeps a registration only if its version is greater than the
// stored one (openhim-core-js src/api/mediators.js addMediator,
// semver.gt), so it keeps the newer configDefs and validates the
// administrator's config against them. Update applies what T declares and
// ignores the rest with one warning naming it.
func TestTypedConfigIgnoresUndeclaredParamsFromCore(t *testing.T) {
	var logBuf strings.Builder
	tc, err := NewTypedConfig(lcTestConfig{UpstreamURL: "http://default", Retries: 1}, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	raw := map[string]any{"upstreamUrl": "https://prod.example", "retries": 4.0, "batchSize": 50.0, "newSecret": "s3cr3t"}
	if err := tc.Update(raw); err != nil {
		t.Fatalf("Update = %v, want the declared params applied", err)
	}
	if got := tc.Load(); got.UpstreamURL != "https://prod.example" || got.Retries != 4 || tc.Version() != 1 {
		t.Fatalf("config = %+v (version %d), want the administrator's values", got, tc.Version())
	}
	if err := tc.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
	if len(raw) != 4 {
		t.Errorf("Update modified its argument: %v", raw)
	}
	log := logBuf.String()
	if strings.Count(log, "level=WARN") != 1 || !strings.Contains(log, "params=\"[batchSize newSecret]\"") {
		t.Errorf("want one warning naming batchSize and newSecret, log = %s", log)
	}
	if strings.Contains(log, "s3cr3t") {
		t.Errorf("log leaks a value: %s", log)
	}

	// A declared param with a bad value still rejects the whole config.
	if err := tc.Update(map[string]any{"retries": "many", "batchSize": 50.0}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Update with a bad declared value = %v, want ErrInvalid", err)
	}
	if got := tc.Load(); got.Retries != 4 {
		t.Errorf("bad update must keep the previous config: %+v", got)
	}
}

// The mediator's own default config stays strictly checked: a param
// without a configDef there is the developer's mistake.
func TestDefinitionConfigStillNeedsDefs(t *testing.T) {
	d := lcDefinition("urn:mediator:strict")
	d.ConfigDefs = []ConfigDef{{Param: "url", Type: ConfigString}}
	d.Config = map[string]any{"url": "http://x", "undeclared": "y"}
	err := d.Validate(8)
	if f := lcFields(err); !slices.Equal(f, []string{"config.undeclared"}) {
		t.Fatalf("Validate error fields = %v (err %v), want [config.undeclared]", f, err)
	}
}
