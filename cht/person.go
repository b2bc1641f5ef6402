package cht

// Person is a contact whose type is a person type (see [Contact.IsPerson]).
// It is the same type as [Contact]; the alias documents intent in
// signatures such as [PeopleService.Get].
type Person = Contact
