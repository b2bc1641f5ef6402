package openhim

// Metadata is the document OpenHIM core imports through the console's
// Export/Import page or POST /metadata: here, mediators with the channels
// that route to them. Its member names are core's (capitalised).
type Metadata struct {
	Channels  []Channel    `json:"Channels"`
	Mediators []Definition `json:"Mediators"`
}

// MetadataFor returns the import document that registers defs and installs
// their default channels, e.g. for a program's --print-openhim-config flag.
func MetadataFor(defs ...Definition) Metadata {
	md := Metadata{Mediators: defs}
	for _, d := range defs {
		md.Channels = append(md.Channels, d.DefaultChannelConfig...)
	}
	return md
}
