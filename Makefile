GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/layerbuild

.PHONY: all build test test-short demo bench vet fmt clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/layerbuild

# Every test, end-to-end ones included (they need root, overlayfs and busybox-static: see .ci/run).
test: build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

# The quick loop: skips the heavy end-to-end tests.
test-short: build
	$(GO) test -count=1 -short ./...

# Builds the demo web app (testdata/demo) from a busybox base into the default store and shows it.
demo: build
	./scripts/demo.sh

# Go micro-benchmarks, then layerbuild side by side with buildah on testdata/bench (medians and ratios).
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 5x -count 3 ./cache/ ./snapshot/ ./builder/
	./scripts/bench-builders.sh

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

clean:
	rm -rf bin
