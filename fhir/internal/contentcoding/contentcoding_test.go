package contentcoding

import (
	"net/http"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		values []string // the Content-Encoding header lines; nil: none
		want   string   // in the error; "" means accepted
	}{
		{"no header", nil, ""},
		{"empty", []string{""}, ""},
		{"identity", []string{"identity"}, ""},
		{"identity in capitals with spaces", []string{" IDENTITY\t"}, ""},
		{"identity listed twice", []string{"identity, Identity"}, ""},
		{"identity on two lines", []string{"identity", "identity"}, ""},
		{"gzip", []string{"gzip"}, `Content-Encoding "gzip"`},
		{"x-gzip", []string{"x-gzip"}, `"x-gzip"`},
		{"deflate", []string{"deflate"}, `"deflate"`},
		{"br", []string{"br"}, `"br"`},
		{"zstd", []string{"zstd"}, `"zstd"`},
		{"gzip in capitals", []string{" GZIP "}, `" GZIP "`},
		{"gzip after identity", []string{"identity, gzip"}, `"identity, gzip"`},
		{"gzip on a second line", []string{"identity", "gzip"}, `"identity, gzip"`},
		{"long value cut", []string{strings.Repeat("x", 300)}, `"` + strings.Repeat("x", maxQuoted) + `..."`},
		{"control characters quoted", []string{"gzip\x01"}, `"gzip\x01"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("Content-Encoding", v)
			}
			err := Check(h)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "Content-Encoding") {
				t.Fatalf("Check = %v, want an error naming Content-Encoding and %s", err, tt.want)
			}
		})
	}
}
