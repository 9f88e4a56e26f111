// Package apitest checks JSON HTTP answers in the services' API tests.
package apitest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Case is a GET of Path expected to answer Code with a JSON body holding
// every string of Want (spaces are ignored on both sides).
type Case struct {
	Path string
	Code int
	Want []string
}

// GET returns a case.
func GET(path string, code int, want ...string) Case { return Case{Path: path, Code: code, Want: want} }

// Run checks every case against the server at base.
func Run(t *testing.T, base string, cases []Case) {
	t.Helper()
	for _, c := range cases {
		resp, err := http.Get(base + c.Path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := strings.ReplaceAll(string(b), " ", "")
		if resp.StatusCode != c.Code || !json.Valid(b) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s, want %d and JSON", c.Path, resp.StatusCode, b, c.Code)
		}
		for _, w := range c.Want {
			if !strings.Contains(body, strings.ReplaceAll(w, " ", "")) {
				t.Errorf("GET %s: %s\nwant it to contain %s", c.Path, b, w)
			}
		}
	}
}
