# agent-exec — build, test, lint, static binary, man pages, benchmarks.
CARGO   ?= cargo
PREFIX  ?= /usr/local
HOST    := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
ARCH    := $(firstword $(subst -, ,$(HOST)))
MUSL    := $(ARCH)-unknown-linux-musl
SYSROOT := $(shell rustc --print sysroot 2>/dev/null)
HAVE_MUSL := $(wildcard $(SYSROOT)/lib/rustlib/$(MUSL)/lib)
STATIC  := target/static/agent-exec
HELLO   := target/static/hello
STATIC_TARGET := $(if $(HAVE_MUSL),$(MUSL),$(HOST))

.PHONY: all build test lint fmt static install bench man clean

all: build

build:
	$(CARGO) build --release

test:
	$(CARGO) test

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# The product: one stripped, statically linked binary. musl when its
# target is installed; otherwise glibc with crt-static, built for the
# explicit host triple so that proc-macros still build for the host.
static:
ifneq ($(HAVE_MUSL),)
	$(CARGO) build --release --target $(MUSL)
	mkdir -p target/static
	cp target/$(MUSL)/release/agent-exec $(STATIC)
else
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(HOST)
	mkdir -p target/static
	cp target/$(HOST)/release/agent-exec $(STATIC)
endif
	strip $(STATIC) 2>/dev/null || true
	@out=$$(ldd $(STATIC) 2>&1 || true); \
	case "$$out" in *"not a dynamic executable"*|*"statically linked"*) ;; \
	  *) echo "error: $(STATIC) is not static: $$out" >&2; exit 1;; esac
	$(STATIC) --version
	@ls -l $(STATIC) | awk '{print "size:", $$5, "bytes"}'

install: static
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(STATIC) $(DESTDIR)$(PREFIX)/bin/agent-exec
	install -m 0644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/

# Regenerate the committed man pages from the flag table.
man:
	$(CARGO) run --quiet -- _gen-man man

# The baseline for start-up cost: a static Rust hello-world built with the
# same optimisation profile as the product.
$(HELLO): benches/hello.rs
	mkdir -p target/static
	rustc --edition 2021 -C opt-level=3 -C codegen-units=1 -C panic=unwind \
	  -C strip=symbols -C target-feature=+crt-static --target $(STATIC_TARGET) -o $@ $<

bench: static $(HELLO)
	AGENT_EXEC_BIN=$(CURDIR)/$(STATIC) HELLO_BIN=$(CURDIR)/$(HELLO) \
	  $(CARGO) bench --bench bench

clean:
	$(CARGO) clean
