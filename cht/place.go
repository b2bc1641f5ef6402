package cht

// Place is a contact whose type is a place type, e.g. a health facility or
// a household (see [Contact.IsPlace]). It is the same type as [Contact].
type Place = Contact
