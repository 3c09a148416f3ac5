package cache

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	r := &Report{Dockerfile: "/ctx/Dockerfile", Image: "sha256:abc", Steps: []ReportStep{
		{Step: 1, Instruction: "FROM busybox", Status: Cached, Kind: "FROM"},
		{Step: 2, Instruction: "COPY . /app", Status: Built, Reason: "1 file changed: app.py", Duration: 0.2, Kind: "COPY",
			LayerDigest: "sha256:l1", LayerSize: 2048, Cause: 2, Broad: true, Sources: []string{"app.py", "requirements.txt"},
			Changed: []string{"app.py"}},
		{Step: 3, Instruction: "RUN pip install -r requirements.txt", Status: Built, Reason: "parent step 2 rebuilt",
			Duration: 12.3, Kind: "RUN", Cause: 2, LayerDigest: "sha256:l2", LayerSize: 5 << 20},
		{Step: 4, Instruction: "RUN echo fast", Status: Cached, Saved: 41.2, Kind: "RUN"},
	}}
	r.Finish(13 * time.Second)
	return r
}

func TestReportTextAndJSON(t *testing.T) {
	r := sampleReport()
	if r.Summary.Cached != 2 || r.Summary.Built != 2 || r.Summary.Saved != 41.2 {
		t.Errorf("summary %+v", r.Summary)
	}
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{"STEP", "REASON", "COPY . /app", "BUILT", "1 file changed: app.py", "parent step 2 rebuilt",
		"5.24MB", "2 of 4 steps cached, 41.2s saved"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back["schema"] != ReportSchema {
		t.Errorf("schema %v", back["schema"])
	}
	steps := back["steps"].([]any)
	s2 := steps[1].(map[string]any)
	for _, k := range []string{"step", "instruction", "key", "status", "reason", "duration_seconds", "layer_digest", "layer_size"} {
		if _, ok := s2[k]; !ok {
			t.Errorf("JSON step lacks %q: %v", k, s2)
		}
	}
	if _, ok := s2["Kind"]; ok {
		t.Error("hint-only fields must stay out of the JSON")
	}
}

func TestBroadCopyHint(t *testing.T) {
	r := sampleReport()
	hints := BroadCopyHints(r.Steps, 1)
	if len(hints) != 1 {
		t.Fatalf("want one hint, got %q", hints)
	}
	h := hints[0]
	for _, want := range []string{"step 3", "rebuilt only because step 2 COPY . /app changed app.py", "COPY requirements.txt /app/",
		"RUN pip install -r requirements.txt"} {
		if !strings.Contains(h, want) {
			t.Errorf("hint lacks %q:\n%s", want, h)
		}
	}
	// No hint when the RUN is cheap, when it names the changed file, or when the COPY is of single files.
	cheap := sampleReport()
	if len(BroadCopyHints(cheap.Steps, 20)) != 0 {
		t.Error("a RUN under the threshold gets no hint")
	}
	uses := sampleReport()
	uses.Steps[2].Instruction = "RUN python app.py --selftest"
	if len(BroadCopyHints(uses.Steps, 1)) != 0 {
		t.Error("a RUN that names the changed file gets no hint")
	}
	narrow := sampleReport()
	narrow.Steps[1].Broad = false
	if len(BroadCopyHints(narrow.Steps, 1)) != 0 {
		t.Error("a COPY of single files gets no hint")
	}
}

func TestWastedBytes(t *testing.T) {
	layers := [][]LayerFile{
		{{Path: "bin/big", Size: 100}, {Path: "keep", Size: 7}},
		{{Path: "opt/data/a", Size: 1000}, {Path: "opt/data/b", Size: 500}, {Path: "cfg", Size: 30}, {Path: "tmp/x", Size: 9}},
		{{Path: "opt/data", Whiteout: true}, {Path: "cfg", Size: 31}, {Path: "bin/big", Whiteout: true}, {Path: "tmp", Opaque: true}},
	}
	got := WastedBytes(layers)
	if len(got) != 2 {
		t.Fatalf("want waste in two layers, got %+v", got)
	}
	if got[0].Layer != 1 || got[0].Bytes != 1539 || got[0].Files != 4 || got[0].Largest[0] != "/opt/data/a" {
		t.Errorf("layer 1 waste %+v", got[0])
	}
	if got[1].Layer != 0 || got[1].Bytes != 100 {
		t.Errorf("layer 0 waste %+v", got[1])
	}
	h := WasteHint(got[0], 5, "RUN cp -r src /opt/data")
	if !strings.Contains(h, "1.54kB added by step 5 RUN cp -r src /opt/data") || !strings.Contains(h, "and 1 more") {
		t.Errorf("hint %q", h)
	}
}

func TestRecords(t *testing.T) {
	ix, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := RecordID("/ctx/Dockerfile")
	if ix.LoadRecord(id) != nil {
		t.Fatal("no record yet")
	}
	rec := &BuildRecord{Dockerfile: "/ctx/Dockerfile", Stages: map[string][]StepRecord{"#0": {{Step: 1, Key: "k"}}}, Image: "sha256:i"}
	if err := ix.SaveRecord(id, rec); err != nil {
		t.Fatal(err)
	}
	got := ix.LoadRecord(id)
	if got == nil || got.Stages["#0"][0].Key != "k" || got.Image != "sha256:i" {
		t.Errorf("record round trip: %+v", got)
	}
	if RecordID("/other/Dockerfile") == id {
		t.Error("different Dockerfiles need different records")
	}
}

func TestLayerFilesSummaryRoundTrip(t *testing.T) {
	ix, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := []LayerFile{{Path: "bin/big", Size: 1 << 40}, {Path: "opt/data", Whiteout: true}, {Path: "tmp", Opaque: true}, {Path: "é/ü", Size: 3}}
	scans := 0
	scan := func() ([]LayerFile, error) { scans++; return want, nil }
	for i := 0; i < 2; i++ {
		got, err := ix.LayerFiles("sha256:abc", scan)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %+v", got)
		}
		for j := range want {
			if got[j] != want[j] {
				t.Errorf("entry %d = %+v, want %+v", j, got[j], want[j])
			}
		}
	}
	if scans != 1 {
		t.Errorf("the layer was scanned %d times; the summary should serve the second call", scans)
	}
	if _, err := decodeLayerFiles([]byte(layerFilesMagic + "\x05\x00")); err == nil {
		t.Error("a truncated summary must be rejected")
	}
	ix.ForgetLayer("sha256:abc")
	ix.LayerFiles("sha256:abc", scan)
	if scans != 2 {
		t.Error("a forgotten layer is scanned again")
	}
}
