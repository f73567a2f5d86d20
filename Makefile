# Pando's one Makefile. `make` builds everything into build/, `make test` runs
# every test, `make run` trains Fashion-MNIST on a local cluster, `make bench`
# measures. `make SANITIZE=address|undefined|thread` builds with a sanitizer.

CC       ?= cc
BUILD    ?= build
SANITIZE ?=
OPT      ?= -O2

# Debian's -dev packages; pkg-config for the ones that ship .pc files.
# gRPC is linked by hand: `pkg-config --libs grpc` drags ~100 abseil libraries.
PKGS     := libprotobuf-c openblas liburing yaml-0.1 zlib libmicrohttpd sqlite3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wpointer-arith
# gcc's vectoriser cost model; clang (make fuzz) has no such flag.
VECT_COST := $(if $(findstring clang,$(CC)),,-fvect-cost-model=cheap)
CFLAGS   += -std=c11 -D_GNU_SOURCE -g $(OPT) -fno-math-errno $(VECT_COST) $(WARN) $(if $(filter 1,$(WERROR)),-Werror) \
            -MMD -MP -Icommon/include -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS   += -lgrpc -lgpr -lcrypto $(PKG_LIBS) -ldnnl -lgomp -lm -lpthread -ldl
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SANITIZE)
endif
# FUZZ=1 (set by `make fuzz`): libFuzzer's coverage instrumentation everywhere.
ifeq ($(FUZZ),1)
CFLAGS   += -fsanitize=fuzzer-no-link
endif

GEN      := $(BUILD)/gen
PROTOS   := proto/pando.proto
HEALTH_PROTO_DIR := /usr/share/grpc-proto
HEALTH_PROTO := grpc/health/v1/health.proto
GEN_SRCS := $(GEN)/pando.pb-c.c $(GEN)/$(HEALTH_PROTO:.proto=.pb-c.c)
GEN_HDRS := $(GEN_SRCS:.c=.h)

COMMON_SRCS := $(wildcard common/src/*/*.c)
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/%.o) $(GEN_SRCS:$(GEN)/%.c=$(BUILD)/gen-obj/%.o)
LIBPANDO    := $(BUILD)/libpando.a

# service folder -> binary name
SERVICES := ps-server worker coordinator ctl selector
BIN_ps-server   := pando-ps
BIN_worker      := pando-worker
BIN_coordinator := pando-coordinator
BIN_ctl         := pandoctl
BIN_selector    := pando-selector
BINS := $(foreach s,$(SERVICES),$(BUILD)/bin/$(BIN_$(s)))

# Each service's code except main.c goes into lib<service>.a so tests link it.
svc_srcs = $(filter-out services/$(1)/main.c,$(wildcard services/$(1)/*.c))
svc_lib  = $(BUILD)/lib$(1).a
SVC_LIBS := $(foreach s,$(SERVICES),$(call svc_lib,$(s)))

UNIT_SRCS  := $(wildcard tests/unit/*/*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
INTEG_SRCS := $(wildcard tests/integration/*.c)
INTEG_BINS := $(INTEG_SRCS:tests/integration/%.c=$(BUILD)/tests/integration/%)
TOOL_SRCS  := $(wildcard tools/*.c)
TOOL_BINS  := $(TOOL_SRCS:tools/%.c=$(BUILD)/tools/%)
PYGEN      := $(GEN)/python/pando_pb2.py $(GEN)/python/health_pb2.py
# Model plugins (pando/plugin.h): the example, and broken ones the tests refuse.
EXAMPLE_PLUGIN := $(BUILD)/examples/libpando_example_plugin.so
TEST_PLUGINS   := $(foreach p,bad_abi no_entry no_gradient,$(BUILD)/tests/plugins/lib$(p).so)

.PHONY: all deps test unit integration run bench bench-strategies check-examples clean format check-format
all: $(BINS) $(UNIT_BINS) $(INTEG_BINS) $(TOOL_BINS) $(PYGEN) $(EXAMPLE_PLUGIN) $(TEST_PLUGINS)

deps:
	@sh tools/deps.sh

# ---- generated code (never committed)
$(GEN)/pando.pb-c.c $(GEN)/pando.pb-c.h: proto/pando.proto
	@mkdir -p $(GEN)
	protoc-c --proto_path=proto --c_out=$(GEN) $<
$(GEN)/grpc/health/v1/health.pb-c.c $(GEN)/grpc/health/v1/health.pb-c.h: $(HEALTH_PROTO_DIR)/$(HEALTH_PROTO)
	@mkdir -p $(GEN)
	protoc-c --proto_path=$(HEALTH_PROTO_DIR) --c_out=$(GEN) $(HEALTH_PROTO)
$(GEN)/python/pando_pb2.py: proto/pando.proto
	@mkdir -p $(GEN)/python
	protoc --proto_path=proto --python_out=$(GEN)/python $<
# health_pb2 at the top level: a grpc/ package folder would shadow grpcio's.
$(GEN)/python/health_pb2.py: $(HEALTH_PROTO_DIR)/$(HEALTH_PROTO)
	@mkdir -p $(GEN)/python
	protoc --proto_path=$(dir $<) --python_out=$(GEN)/python $<

# ---- objects
$(BUILD)/gen-obj/%.o: $(GEN)/%.c $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-pedantic -c -o $@ $<
$(BUILD)/%.o: %.c | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIBPANDO): $(COMMON_OBJS)
	@rm -f $@
	ar rcs $@ $^

define SERVICE_RULES
$(call svc_lib,$(1)): $(patsubst %.c,$(BUILD)/%.o,$(call svc_srcs,$(1)))
	@rm -f $$@
	ar rcs $$@ $$^
$(BUILD)/bin/$(BIN_$(1)): $(BUILD)/services/$(1)/main.o $(call svc_lib,$(1)) $(LIBPANDO)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call SERVICE_RULES,$(s))))
# pandoctl plot draws with cairo; only pandoctl (and the tests linking its
# code) load it.
CAIRO_CFLAGS := $(shell pkg-config --cflags cairo fontconfig 2>/dev/null)
CAIRO_LIBS   := $(shell pkg-config --libs cairo fontconfig 2>/dev/null)
$(BUILD)/services/ctl/plot.o: CFLAGS += $(CAIRO_CFLAGS)
$(BUILD)/bin/pandoctl $(BUILD)/tests/unit/ctl/%: LDLIBS += $(CAIRO_LIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(SVC_LIBS) $(LIBPANDO)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(LIBPANDO)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tools/%: $(BUILD)/tools/%.o $(LIBPANDO)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
# ckptbench writes checkpoints with pando-ps's own code
$(BUILD)/tools/ckptbench: $(call svc_lib,ps-server)
$(BUILD)/tools/ckptbench: LDLIBS := $(call svc_lib,ps-server) $(LIBPANDO) $(LDLIBS)

# ---- model plugins: shared objects that need only pando/plugin.h
$(EXAMPLE_PLUGIN): examples/plugin/fm.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared $(LDFLAGS) -o $@ $< -lm
$(BUILD)/tests/plugins/lib%.so: tests/plugins/broken.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DBROKEN_$* -fPIC -shared $(LDFLAGS) -o $@ $<
# the plugin tests load them
$(BUILD)/tests/unit/common/test_plugin: | $(EXAMPLE_PLUGIN) $(TEST_PLUGINS)

# ---- running
# `make test` runs every unit and integration test; `make test T=name` one of them.
test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) sh tests/run.sh $(T)

# `make test-tls` runs the integration tests (or T=name) with TLS and a
# cluster token on every daemon (PANDO_TEST_TLS=1; PANDO_TEST_TLS=mtls also
# demands client certificates): tests/integration/lib.sh and pdtls.py make
# throw-away certificates with tools/certs.sh for each test.
.PHONY: test-tls
test-tls: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) PANDO_TEST_TLS=$${PANDO_TEST_TLS:-1} sh tests/run.sh $(T)

# `make run JOB=examples/x.yaml` runs that job instead, with the daemons it
# needs (a selector and simulated devices for a federated job).
JOB ?= examples/fashion-mlp.yaml
run: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tools/local-cluster.sh $(JOB)

bench:
	@sh tools/deps.sh bench
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tools/bench.sh
	@BUILD=$(BUILD) sh tools/bench-train.sh
	@$(MAKE) --no-print-directory check-examples

# The example jobs at full size through a local cluster (test_examples with
# PANDO_EXAMPLES=full; `make test` runs a smaller LeNet): minutes of CNN math.
check-examples: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) PANDO_EXAMPLES=full TEST_TIMEOUT=$${TEST_TIMEOUT:-3600} sh tests/run.sh test_examples

# The update strategies under a straggler: a table and docs/strategies.svg.
bench-strategies: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tools/strategies.sh

# Federated averaging in McMahan et al.'s setting, three partitions x two
# aggregations, and 1,000 devices: a table and docs/federated.svg.
.PHONY: bench-federated
bench-federated: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tools/bench-federated.sh

# What durability costs: checkpoint bandwidth next to a plain write, training
# with a checkpoint every epoch next to without, and kill -9 to training again.
.PHONY: bench-recovery
bench-recovery: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tools/bench-recovery.sh

# `make test-container` builds the image and trains the example job with
# docker-compose on a private Docker engine, then removes all it made (needs
# root; installs docker.io, docker-compose, debootstrap; see docs/deploy.md).
.PHONY: test-container
test-container:
	@sh tests/container/run.sh

# ---- fuzzing (clang, libFuzzer, ASan + UBSan) into $(FUZZ_BUILD); see tests/fuzz/.
# `make fuzz` runs each harness for FUZZ_SECONDS (new inputs go to
# $(FUZZ_BUILD)/corpus/NAME); `make fuzz-ci` replays the committed corpus and
# the regressions, then runs each harness for FUZZ_CI_SECONDS. A crash leaves
# its input in $(FUZZ_BUILD)/crashes/: add it to tests/fuzz/regressions/NAME/.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 600
FUZZ_CI_SECONDS ?= 20
FUZZ_NAMES   := wire request spec config idx csv libsvm peer
FUZZ_BINS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
# Over-allocation is a finding too: no input may make a decoder ask for more.
FUZZ_FLAGS   := -rss_limit_mb=1024 -malloc_limit_mb=512 -timeout=10 -max_len=65536
.PHONY: fuzz fuzz-ci fuzz-build fuzzers
fuzzers: $(FUZZ_BINS)
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIBPANDO) | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(LIBPANDO) $(LDLIBS)
fuzz-build: deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang SANITIZE=address,undefined FUZZ=1 \
	  OPT=-O1 fuzzers
fuzz: fuzz-build
	@for n in $(FUZZ_NAMES); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$n $(FUZZ_BUILD)/crashes; \
	  echo "# fuzz_$$n for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/fuzz/fuzz_$$n $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/crashes/$$n- $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n \
	    2>$(FUZZ_BUILD)/fuzz_$$n.log || { tail -n 40 $(FUZZ_BUILD)/fuzz_$$n.log; exit 1; }; \
	  grep -E '^stat::number_of_executed_units' $(FUZZ_BUILD)/fuzz_$$n.log; \
	done
fuzz-ci: fuzz-build
	@BUILD=$(FUZZ_BUILD) FUZZ_CI_SECONDS=$(FUZZ_CI_SECONDS) sh tests/fuzz/ci.sh $(FUZZ_NAMES)

format:
	clang-format -i $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')
check-format: deps
	clang-format --dry-run --Werror $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
