# Makefile - builds raft-kv: server/raft_server, client/raft_client and the Check tests.
#   make            build the two programs
#   make check      build and run every test (unit, integration, stress)
#   make run        start a five-server cluster (see run_servers.sh)
#   make SAN=address|undefined|thread check   the same under a sanitizer (own build dir)

CC      ?= cc
SAN     ?=
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread
LDFLAGS += -pthread

ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SAN)
BUILD   := build/$(SAN)
else
BUILD   := build/default
endif

COMMON_SRC := $(sort $(wildcard common/*.c))
SERVER_SRC := $(sort $(wildcard server/core/*.c server/storage/*.c server/kv/*.c \
                                server/net/*.c server/node/*.c))
CLIENT_SRC := $(filter-out client/main.c,$(sort $(wildcard client/*.c)))
# The cluster control shared by the tests and tools (not linked into the two programs).
CTL_SRC    := $(sort $(wildcard common/cluster_ctl/*.c))
HARNESS_SRC := $(sort $(wildcard tests/harness*.c tests/lincheck.c)) $(CTL_SRC)
# Unit tests first (fast), then integration, then stress.
TEST_SRC   := $(sort $(wildcard tests/unit_*.c)) $(sort $(wildcard tests/integ_*.c)) \
              $(sort $(wildcard tests/stress_*.c))

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
COMMON_OBJ  := $(call obj,$(COMMON_SRC))
SERVER_OBJ  := $(call obj,$(SERVER_SRC))
CLIENT_OBJ  := $(call obj,$(CLIENT_SRC))
HARNESS_OBJ := $(call obj,$(HARNESS_SRC))

ifneq ($(SAN),)
SERVER_BIN := $(BUILD)/raft_server
CLIENT_BIN := $(BUILD)/raft_client
BENCH_BIN  := $(BUILD)/raft_bench
else
SERVER_BIN := server/raft_server
CLIENT_BIN := client/raft_client
endif
TEST_BINS  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

.PHONY: all check check-deps tests unit integ stress run clean sim fuzz bench bench-etcd
all: $(SERVER_BIN) $(CLIENT_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(SERVER_BIN): $(call obj,server/main.c) $(SERVER_OBJ) $(COMMON_OBJ)
	$(CC) $^ -o $@ $(LDFLAGS)

$(CLIENT_BIN): $(call obj,client/main.c) $(CLIENT_OBJ) $(COMMON_OBJ)
	$(CC) $^ -o $@ $(LDFLAGS)

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS_OBJ) $(SERVER_OBJ) $(CLIENT_OBJ) $(COMMON_OBJ)
	$(CC) $^ -o $@ $(LDFLAGS) $(CHECK_LIBS)

# integ_shell plays races out in a fixed order by holding a thread at its next lock.
$(BUILD)/tests/integ_shell: LDFLAGS += -Wl,--wrap=pthread_mutex_lock

# A test-only server: raft_server with tests/fault_io.c in place of the storage I/O seam
# (server/storage/storage_io.c), so that an environment variable can fill its disk or
# fail its fdatasync (tests/integ_disk.c). raft_server itself holds no fault code.
FAULT_SERVER_BIN := $(BUILD)/tests/raft_server_faults
$(FAULT_SERVER_BIN): $(call obj,server/main.c tests/fault_io.c) \
                     $(filter-out $(call obj,server/storage/storage_io.c),$(SERVER_OBJ)) \
                     $(COMMON_OBJ)
	$(CC) $^ -o $@ $(LDFLAGS)

# Check is the one test dependency; install it if missing (or say how).
check-deps:
	@tests/ensure_check.sh

tests: check-deps
	@$(MAKE) --no-print-directory $(SERVER_BIN) $(CLIENT_BIN) $(FAULT_SERVER_BIN) \
		$(TEST_BINS) $(SIM_BIN) $(BENCH_BIN) $(TOOL_TEST_BINS)

# Every test program runs even if an earlier one failed; the target fails if any did.
RUN_TESTS = RK_SERVER_BIN=$(SERVER_BIN) RK_CLIENT_BIN=$(CLIENT_BIN) \
            RK_FAULT_SERVER_BIN=$(FAULT_SERVER_BIN) tests/run_tests.sh $(1)

check: tests
	@$(call RUN_TESTS,$(TEST_BINS) $(TOOL_TEST_BINS))

unit: tests
	@$(call RUN_TESTS,$(filter $(BUILD)/tests/unit_%,$(TEST_BINS)) $(TOOL_TEST_BINS))

integ: tests
	@$(call RUN_TESTS,$(filter $(BUILD)/tests/integ_%,$(TEST_BINS)))

stress: tests
	@$(call RUN_TESTS,$(filter $(BUILD)/tests/stress_%,$(TEST_BINS)))

# The deterministic simulator (tests/sim): make sim SEEDS=100000 [NODES=3,5] [STEPS=2000]
SEEDS ?= 10000
NODES ?= 3,5
STEPS ?= 2000
SIM_BIN := $(BUILD)/sim
$(SIM_BIN): $(call obj,$(sort $(wildcard tests/sim/*.c))) $(SERVER_OBJ) $(COMMON_OBJ)
	$(CC) $^ -o $@ $(LDFLAGS)

sim: $(SIM_BIN)
	$(SIM_BIN) --seeds 1..$(SEEDS) --nodes $(NODES) --steps $(STEPS) --jobs 2

# The mutation catalog (tests/mutants): every mutant of the core must be killed by the
# tests. make mutants [MUTANTS=5 RANDOM=1] [ONLY=id,id]: all, a sample, or those named.
MUTANTS ?= 0
.PHONY: mutants
mutants:
	tests/mutants/run_mutants.sh --sample $(MUTANTS) $(if $(filter 1,$(RANDOM)),--random) \
		$(if $(ONLY),--only $(ONLY))

# Fuzzing with clang's libFuzzer: make fuzz [FUZZ_TIME=600] (seconds per target).
# make check already replays the corpus without libFuzzer (tests/unit_fuzz_corpus).
FUZZ_TIME ?= 60
fuzz:
	tests/fuzz/run_fuzz.sh $(FUZZ_TIME)

# The benchmark matrix (tools/raft_bench): writes docs/benchmarks-latest.md. `make check`
# builds it too (under a sanitizer, into the build directory), so it cannot rot unseen,
# and runs the Check test of its etcd codec (tools/test_bench_http.c).
BENCH_BIN ?= tools/raft_bench
BENCH_SRC := $(filter-out tools/test_%.c,$(sort $(wildcard tools/*.c)))
$(BENCH_BIN): $(call obj,$(BENCH_SRC) $(CTL_SRC)) $(CLIENT_OBJ) $(COMMON_OBJ)
	$(CC) $^ -o $@ $(LDFLAGS)

TOOL_TEST_BINS := $(BUILD)/tools/test_bench_http
$(BUILD)/tools/test_%.o: tools/test_%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tools/test_bench_http: $(call obj,tools/test_bench_http.c tools/bench_http.c) \
		$(COMMON_OBJ)
	$(CC) $^ -o $@ $(LDFLAGS) $(CHECK_LIBS)

# Then the snapshot targets (issue 6), the membership targets (issue 15), cas and scan
# and expiring keys (issue 16), watch (issue 17), each a section of the same file; the
# disk stall of issue 15 needs the test-only server.
bench: all $(BENCH_BIN) $(FAULT_SERVER_BIN)
	$(BENCH_BIN) --matrix && $(BENCH_BIN) --snapshot-targets && \
		$(BENCH_BIN) --membership-targets --fault-server-bin $(FAULT_SERVER_BIN) && \
		$(BENCH_BIN) --coord-targets && $(BENCH_BIN) --expiry-targets && \
		$(BENCH_BIN) --watch-targets

# raft-kv beside a local etcd cluster (Debian's etcd-server), into
# docs/benchmarks-etcd-latest.md; without etcd it says how to install it and fails.
# BENCH_ETCD_ARGS=--quick: a short smoke run.
bench-etcd: all $(BENCH_BIN)
	$(BENCH_BIN) --compare-etcd $(BENCH_ETCD_ARGS)

run: all
	./run_servers.sh

clean:
	rm -rf build server/raft_server client/raft_client tools/raft_bench

-include $(shell find build -name '*.d' 2>/dev/null)
