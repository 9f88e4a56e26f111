// Package apitest checks JSON HTTP answers and OpenAPI descriptions in the
// services' API tests.
package apitest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/mux"
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

// CheckOpenAPI checks that spec (an OpenAPI 3 description) describes
// exactly the routes of r: every path template and method the router
// serves is an operation of spec, and every operation of spec is served.
func CheckOpenAPI(t *testing.T, r *mux.Router, spec []byte) {
	t.Helper()
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(spec, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi.json: openapi %q, want 3.x", doc.OpenAPI)
	}
	described := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" || m == "summary" || m == "description" {
				continue
			}
			described[strings.ToUpper(m)+" "+path] = true
		}
	}
	served := map[string]bool{}
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if err != nil {
			t.Errorf("route %s serves every method; give it its methods", path)
			return nil
		}
		for _, m := range methods {
			served[m+" "+path] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for op := range served {
		if !described[op] {
			t.Errorf("the router serves %s, which openapi.json does not describe", op)
		}
	}
	for op := range described {
		if !served[op] {
			t.Errorf("openapi.json describes %s, which the router does not serve", op)
		}
	}
}
