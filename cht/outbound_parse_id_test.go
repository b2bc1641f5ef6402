package cht

import (
	"strings"
	"testing"
)

// A push that names a document by an id no CHT document can have is
// refused (the handler answers 400) instead of being looked up in CHT,
// whose 404 would be answered as "not replicated yet" and retried forever.
func TestParsePushRefusesIDsNoDocumentCanHave(t *testing.T) {
	for _, body := range []string{
		`{"id":"a\u0000b"}`,
		`{"id":"a\nb"}`,
		`{"id":"abc","rev":"1-\u0007"}`,
	} {
		if _, err := parsePush([]byte(body), "doc"); err == nil || !strings.Contains(err.Error(), "control character") {
			t.Errorf("%s: err = %v, want a control character refused", body, err)
		}
	}
	p, err := parsePush([]byte(`{"id":"75905106-a4bc","rev":"2-x"}`), "doc")
	if err != nil || p.ID != "75905106-a4bc" || p.Rev != "2-x" {
		t.Errorf("valid named push: %+v, %v", p, err)
	}
}
