package backfill

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecodeCheckpoint feeds decodeCheckpoint any file content: no panic;
// what it accepts has no count below zero, no batches without a place in
// the feed, and reads back the same once written again.
func FuzzDecodeCheckpoint(f *testing.F) {
	for _, s := range []string{
		`{"seq":"12-abc","batches":3,"docs":300,"converted":290,"resources":900,"skipped":{"deleted":9},"failed":1,` +
			`"failures":[{"docId":"r1","reason":"bad"}],"updatedAt":"2026-12-01T10:00:00Z"}`,
		`{"seq":"","batches":0,"docs":0,"converted":0,"resources":0,"failed":0,"updatedAt":"0001-01-01T00:00:00Z"}`,
		`{"seq":42,"batches":1}`,
		`{"seq":null,"batches":0}`,
		`{"seq":"1","batches":-1}`,
		`{"seq":"1","batches":1,"skipped":{"x":-1}}`,
		`{"seq":"1","batches":1,"failures":[{}]}`,
		`{"seq":"1","batches":1,"updatedAt":"yesterday"}`,
		`{"seq":"1","batches":1e2}`,
		`{"Seq":"1","batches":1}`,
		`{}`, `null`, `[]`, `"x"`, ``, `{"seq":"12-abc","batc`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := decodeCheckpoint(data)
		if err != nil {
			if !reflect.DeepEqual(cp, Checkpoint{}) {
				t.Fatalf("error %v with a checkpoint %+v", err, cp)
			}
			return
		}
		for _, n := range []int64{cp.Batches, cp.Docs, cp.Converted, cp.Resources, cp.Failed} {
			if n < 0 {
				t.Fatalf("accepted a count below zero: %+v", cp)
			}
		}
		for _, n := range cp.Skipped {
			if n < 0 {
				t.Fatalf("accepted a count below zero: %+v", cp)
			}
		}
		if cp.Batches > 0 && cp.Seq == "" {
			t.Fatalf("accepted %d batches without a seq", cp.Batches)
		}
		written, err := json.MarshalIndent(cp, "", "  ")
		if err != nil {
			return // a time beyond year 9999: WriteCheckpoint reports it
		}
		again, err := decodeCheckpoint(written)
		if err != nil {
			t.Fatalf("%s, written from %q, is not read back: %v", written, data, err)
		}
		if rewritten, _ := json.MarshalIndent(again, "", "  "); string(rewritten) != string(written) {
			t.Fatalf("read back as\n%s\nnot\n%s", rewritten, written)
		}
	})
}

// FuzzParseFailures feeds parseFailures any failure list: no panic; what
// it accepts lists each document once, with an id, reads back the same
// once written again, and stays the same when a resumed Run ends the file
// on a whole line (endOnWholeLine) and appends to it.
func FuzzParseFailures(f *testing.F) {
	for _, s := range []string{
		`{"docId":"a","reason":"r1"}` + "\n" + `{"docId":"b","reason":"r2"}` + "\n" + `{"docId":"a","reason":"r3"}` + "\n",
		`{"docId":"a","reason":"r1"}` + "\n" + `{"docId":"c","rea`,
		`{"docId":"a","reason":"r1"}` + "\n" + `{"docId":"b","reason":"r2"}`,
		`{"docId":"a","reason":"r1"}` + "\r\n\n\n",
		`{"docId":"a"}` + "\n" + `garbage` + "\n" + `{"docId":"b"}` + "\n",
		`{"docId":""}` + "\n",
		`null` + "\n",
		"\n",
		"",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := parseFailures(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, x := range list {
			if x.DocID == "" || seen[x.DocID] {
				t.Fatalf("listed %+v", list)
			}
			seen[x.DocID] = true
		}
		written, err := appendLines(nil, list)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := parseFailures(written); err != nil || !reflect.DeepEqual(again, list) && len(list) > 0 {
			t.Fatalf("%q, written from %+v, read back as %+v, %v", written, list, again, err)
		}

		// A resumed Run: end on a whole line, then append.
		path := filepath.Join(dir, "checkpoint.json.failures")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		l := &failureLog{f: file}
		if err := l.endOnWholeLine(); err != nil {
			t.Fatal(err)
		}
		if err := l.add([]Failure{{DocID: "appended", Reason: "r"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		resumed, err := io.ReadAll(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseFailures(resumed)
		if err != nil {
			t.Fatalf("%q, resumed from %q, is not a list: %v", resumed, data, err)
		}
		want := append([]Failure(nil), list...)
		if seen["appended"] {
			for i := range want {
				if want[i].DocID == "appended" {
					want[i].Reason = "r"
				}
			}
		} else {
			want = append(want, Failure{DocID: "appended", Reason: "r"})
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("resumed from %q as %q: listed %+v, want %+v", data, resumed, got, want)
		}
	})
}
