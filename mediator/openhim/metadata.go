package openhim

// Metadata is the document OpenHIM core imports through the console's
// Export/Import page or POST /metadata: here, mediators with the channels
// that route to them. Its member names are core's (capitalised). An empty
// collection is left out: core imports every member it is given and
// fails the whole import (500) on a null one (src/api/metadata.js,
// handleMetadataPost, Array.from of each member).
type Metadata struct {
	Channels  []Channel    `json:"Channels,omitempty"`
	Mediators []Definition `json:"Mediators,omitempty"`
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
