package cht

import (
	"errors"
	"testing"
)

func TestAPIErrorMatchesOnlyItsSentinel(t *testing.T) {
	sentinels := []error{ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict, ErrServer, ErrUnsupported, ErrInvalidRecord}
	tests := []struct {
		status int
		want   error // nil: matches none
	}{
		{400, nil}, {401, ErrUnauthorized}, {403, ErrForbidden}, {404, ErrNotFound},
		{409, ErrConflict}, {429, nil}, {500, ErrServer}, {503, ErrServer},
	}
	for _, tt := range tests {
		err := error(&APIError{StatusCode: tt.status})
		for _, s := range sentinels {
			if got := errors.Is(err, s); got != (s == tt.want) {
				t.Errorf("errors.Is(APIError{%d}, %v) = %v", tt.status, s, got)
			}
		}
	}
}
