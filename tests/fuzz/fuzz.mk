# tests/fuzz/fuzz.mk: builds the libFuzzer harnesses with clang, apart from the autotools objects.
#
# Run by `make fuzz` from the top build directory, which passes:
#   top_srcdir	the source tree (relative or absolute)
#   SOURCES	libsockudo.a's .c files, relative to top_srcdir
#   DEPS_CFLAGS, DEPS_LIBS	what configure found with pkg-config
# The project's sources are built again with coverage and sanitizers into
# tests/fuzz/build/obj (never next to the autotools objects), archived, and
# each harness links against that archive, so it pulls in only what it
# calls.  FUZZ_CC (default clang) may name another clang, as clang-14.

FUZZ_CC ?= clang
B = tests/fuzz/build
FZ = $(top_srcdir)/tests/fuzz
# every tests/fuzz/fuzz_NAME.c is a harness
HARNESSES = $(patsubst $(FZ)/fuzz_%.c,%,$(wildcard $(FZ)/fuzz_*.c))

SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS ?= -g -O1 -fno-omit-frame-pointer
# config.h is the top build directory's; SCHEMA_DIR is only read by the
# migrations, which no harness runs.
FUZZ_CPPFLAGS = -I. -I$(top_srcdir) -I$(top_srcdir)/app -DSCHEMA_DIR='"/nonexistent"' \
	$(DEPS_CFLAGS)
WARN = -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter

OBJS = $(SOURCES:%.c=$(B)/obj/%.o)
BINS = $(HARNESSES:%=$(B)/fuzz_%)

all: $(BINS)

$(B)/obj/%.o: $(top_srcdir)/%.c config.h
	@mkdir -p $(@D)
	@echo "  FUZZCC   $<"
	@$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) $(WARN) -pthread $(SAN) \
	    -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(B)/libsockudo-fuzz.a: $(OBJS)
	@echo "  AR       $@"
	@rm -f $@ && ar rcs $@ $(OBJS)

$(B)/fuzz_%: $(FZ)/fuzz_%.c $(FZ)/fuzz.h $(B)/libsockudo-fuzz.a
	@echo "  FUZZLD   $@"
	@$(FUZZ_CC) $(FUZZ_CPPFLAGS) -I$(FZ) $(FUZZ_CFLAGS) $(WARN) -pthread $(SAN) \
	    -fsanitize=fuzzer -o $@ $< $(B)/libsockudo-fuzz.a $(DEPS_LIBS) -pthread

.PHONY: all
.SECONDARY: $(OBJS)
-include $(OBJS:.o=.d)
