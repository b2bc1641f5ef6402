package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// credentialHeaders are the caller's credentials, never sent upstream
// unless Settings.ForwardHeaders lists them.
var credentialHeaders = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// rewrite points the request at upstream, below its base path, without
// the caller's credentials unless forward lists them, and without
// Accept-Encoding (core forwards its client's): Go's transport then asks
// for gzip itself and decompresses the answer, which must be text to fit
// in the envelope.
func rewrite(r *httputil.ProxyRequest, upstream *url.URL, forward []string) {
	r.SetURL(upstream)
	r.Out.Header.Del("Accept-Encoding")
	for _, h := range credentialHeaders {
		r.Out.Header.Del(h)
	}
	for _, h := range forward {
		if v := r.In.Header.Values(h); len(v) > 0 {
			r.Out.Header[http.CanonicalHeaderKey(h)] = v
		}
	}
}

// refuse answers a request that must not go upstream and reports whether
// it did: a path with dot-segments (400), encoded or not, which could
// leave the upstream's base path, and a body over limit (413), of any
// transfer encoding. A body within the limit is buffered so that
// nothing is sent upstream before it is known to fit.
func refuse(w http.ResponseWriter, r *http.Request, limit int64, logger *slog.Logger) bool {
	if hasDotSegment(r.URL.EscapedPath()) {
		return refuseWith(w, r, logger, http.StatusBadRequest, "path has dot-segments", nil)
	}
	if limit == 0 {
		limit = mediator.DefaultMaxBodyBytes
	}
	if limit < 0 || r.Body == nil || r.Body == http.NoBody {
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return refuseWith(w, r, logger, http.StatusRequestEntityTooLarge, "request body exceeds the limit", slog.Int64("limit", limit))
		}
		return refuseWith(w, r, logger, http.StatusBadRequest, "request body unreadable", slog.String("err", err.Error()))
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	r.Header.Del("Transfer-Encoding")
	r.TransferEncoding = nil
	return false
}

// hasDotSegment reports whether a segment of the escaped path is "." or
// "..", once decoded (twice, for double encoding), also when an encoded
// slash or backslash splits it.
func hasDotSegment(escaped string) bool {
	p := escaped
	for range 3 {
		for _, seg := range strings.FieldsFunc(p, func(c rune) bool { return c == '/' || c == '\\' }) {
			if seg == "." || seg == ".." {
				return true
			}
		}
		u, err := url.PathUnescape(p)
		if err != nil || u == p {
			return err != nil
		}
		p = u
	}
	return false
}

// refuseWith logs the refusal and answers it with a JSON error body.
func refuseWith(w http.ResponseWriter, r *http.Request, logger *slog.Logger, code int, msg string, attr any) bool {
	args := []any{"status", code, "method", r.Method, "path", r.URL.EscapedPath()}
	if attr != nil {
		args = append(args, attr)
	}
	logger.Warn("passthrough: "+msg, args...)
	writeJSONError(w, code, msg)
	return true
}

// proxyError answers an upstream failure with 502 and a JSON error.
func proxyError(logger *slog.Logger) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		logger.Error("passthrough: upstream failed", "method", r.Method, "path", r.URL.EscapedPath(), "err", err)
		writeJSONError(w, http.StatusBadGateway, "upstream failed")
	}
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
