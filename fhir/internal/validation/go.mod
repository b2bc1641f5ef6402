module github.com/cht-interop/openhim-mediator-go/fhir/internal/validation

go 1.26.0

require (
	github.com/cht-interop/openhim-mediator-go v0.0.0
	github.com/google/fhir/go v0.7.4
	github.com/samply/golang-fhir-models/fhir-models v0.3.2
)

require (
	bitbucket.org/creachadair/stringset v0.0.9 // indirect
	github.com/go-resty/resty/v2 v2.17.2 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/json-iterator/go v1.1.10 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.1 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/serenize/snaker v0.0.0-20201027110005-a7ad2135616e // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/net v0.59.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/cht-interop/openhim-mediator-go => ../../..
