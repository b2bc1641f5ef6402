package fhir

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
)

// answerCases are transaction answers okAnswer must accept (ok) or leave
// to checkTransactionAnswer.
var answerCases = []struct {
	name, body string
	want       int
	ok         bool
}{
	{"minimal", answer("201 Created", "200 OK"), 2, true},
	{"any count", answer("201 Created", "200 OK"), -1, true},
	{"with resources and outcome", `{"resourceType":"Bundle","id":"r","type":"transaction-response","link":[{"relation":"self","url":"x"}],"entry":[{"fullUrl":"u","resource":{"resourceType":"Patient","a":[1,-2.5e3,true,false,null,{"b":"\u00e9\n"}]},"response":{"status":" 201 Created ","outcome":{"resourceType":"OperationOutcome"}}}]}`, 1, true},
	{"white space and trailing data", " {\n\"entry\" : [ { \"response\" : { \"status\" : \"200\" } } ] , \"type\":\"transaction-response\",\"resourceType\":\"Bundle\"}\n\nxx", 1, true},
	{"escaped strings", `{"resourceType":"\u0042undle","type":"transaction-response","entry":[{"response":{"status":"\u0032\u0030\u0031 Created"}}]}`, 1, true},
	{"status key in other case", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201","STATUS":"500"}}]}`, 1, false},
	{"status key in other case, last", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"Status":"500","status":"201"}}]}`, 1, true},
	{"status null keeps the earlier", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201","status":null}}]}`, 1, false},
	{"second response failed", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201"},"response":{"status":"409"}}]}`, 1, false},
	{"failed entry", answer("201 Created", "412 Precondition Failed"), 2, false},
	{"status not a string", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":201}}]}`, 1, false},
	{"response null", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":null}]}`, 1, false},
	{"entry without response", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"fullUrl":"x"}]}`, 1, false},
	{"entry null", `{"resourceType":"Bundle","type":"transaction-response","entry":null}`, 0, false},
	{"entry twice", `{"resourceType":"Bundle","type":"transaction-response","entry":[],"entry":[{"response":{"status":"200"}}]}`, 1, false},
	{"entry not an object", `{"resourceType":"Bundle","type":"transaction-response","entry":[null]}`, 1, false},
	{"too few entries", answer("201 Created"), 2, false},
	{"batch-response", `{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"200 OK"}}]}`, 1, false},
	{"resourceType null", `{"resourceType":"Bundle","resourceType":null,"type":"transaction-response","entry":[{"response":{"status":"200"}}]}`, 1, false},
	{"control character", "{\"resourceType\":\"Bundle\",\"type\":\"transaction-response\",\"x\":\"a\tb\",\"entry\":[{\"response\":{\"status\":\"200\"}}]}", 1, false},
	{"bad number", `{"resourceType":"Bundle","type":"transaction-response","x":01,"entry":[{"response":{"status":"200"}}]}`, 1, false},
	{"truncated", answer("201 Created")[:60], 1, false},
	{"not JSON", `<html>proxy</html>`, 1, false},
	{"empty", ``, 1, false},
}

// okAnswer accepts what it should, and checkAnswer answers each case as
// checkTransactionAnswer does.
func TestCheckAnswerMatchesTheStreamingCheck(t *testing.T) {
	for _, tt := range answerCases {
		t.Run(tt.name, func(t *testing.T) {
			slow := checkTransactionAnswer(strings.NewReader(tt.body), tt.want)
			assert.Equal(t, tt.ok, okAnswer([]byte(tt.body), tt.want), "okAnswer")
			if tt.ok {
				assert.Nil(t, slow, "the streaming check accepts it too")
			}
			// One byte per read: the answer is read whole all the same.
			assert.Equal(t, slow, checkAnswer(iotest.OneByteReader(strings.NewReader(tt.body)), tt.want))
		})
	}
}

// An answer larger than maxHeldAnswer, and one whose reading fails, are
// checked as they stream.
func TestCheckAnswerLargeOrFailing(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","type":"transaction-response","entry":[`)
	pad := strings.Repeat("x", 1000)
	n := 0
	for b.Len() <= 2*maxHeldAnswer {
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"resource":{"text":"` + pad + `"},"response":{"status":"201 Created"}}`)
		n++
	}
	b.WriteString(`]}`)
	assert.Nil(t, checkAnswer(strings.NewReader(b.String()), n))
	se := checkAnswer(strings.NewReader(b.String()), n+1)
	if assert.NotNil(t, se) {
		assert.Contains(t, se.Reason, "want")
	}

	broken := io.MultiReader(strings.NewReader(answer("201 Created")[:40]), iotest.ErrReader(errors.New("connection reset")))
	se = checkAnswer(broken, 1)
	if assert.NotNil(t, se) {
		assert.Contains(t, se.Reason, "connection reset")
	}
}

// okAnswer never accepts an answer checkTransactionAnswer refuses.
func FuzzOkAnswer(f *testing.F) {
	for _, tt := range answerCases {
		f.Add([]byte(tt.body), tt.want)
	}
	f.Fuzz(func(t *testing.T, b []byte, want int) {
		if okAnswer(b, want) {
			if se := checkTransactionAnswer(bytes.NewReader(b), want); se != nil {
				t.Fatalf("okAnswer accepts %q, checkTransactionAnswer says %v", b, se)
			}
		}
	})
}
