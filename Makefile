# libuffd: a plain GNU Makefile (gcc or clang, make; nothing else required).
#
#   make                 libraries, the uffd tool and the tests, into build/
#   make check           build and run the test suite (tests/runtests.sh)
#   make check SAN=address|undefined|thread
#                        the same suite under a sanitizer, in build/san-NAME/
#   make demo            the tour: build/uffd demo
#   make install PREFIX=/usr/local DESTDIR=
#   make fuzz            libFuzzer targets into build/fuzz/ (needs clang; see
#                        fuzz/run.sh and README.md)
#
# Optional dependencies are detected here and announced with -DHAVE_*; the
# library builds and works without them.

VERSION_MAJOR := 1
VERSION_MINOR := 0
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR)

CC ?= gcc
OBJCOPY ?= objcopy
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SAN ?=

ifeq ($(V),1)
Q :=
else
Q := @
endif

# BUILD may be set to keep several builds apart (make BUILD=build/mine).
ifeq ($(SAN),)
BUILD ?= build
else
BUILD ?= build/san-$(SAN)
SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

# make fuzz builds everything again with clang, instrumented for libFuzzer.
ifeq ($(FUZZING),1)
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
endif

WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes
CFLAGS ?= -O2 -g
# Hidden by default: what the public headers declare is exported (their
# "#pragma GCC visibility push(default)"), nothing else.
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -pthread $(WARN) $(CFLAGS) $(SANFLAGS) \
	-Iinclude -Isrc -fPIC -fvisibility=hidden -MMD -MP
LDLIBS := -pthread -lm

# liburing (optional): the file store's batches go through io_uring.
HAVE_LIBURING := $(shell printf '\043include <liburing.h>\nint main(void){struct io_uring r;return io_uring_queue_init(1,&r,0);}' | \
	$(CC) -x c - -o /dev/null -luring >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_LIBURING),1)
ALL_CFLAGS += -DHAVE_LIBURING
LDLIBS += -luring
endif

# hiredis (optional): the Redis store (uffd_store_redis); without it that
# store reports EOPNOTSUPP.
HAVE_HIREDIS := $(shell printf '\043include <hiredis/hiredis.h>\nint main(void){redisReader *r=redisReaderCreate();redisReaderFree(r);return 0;}' | \
	$(CC) -x c - -o /dev/null -lhiredis >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_HIREDIS),1)
ALL_CFLAGS += -DHAVE_HIREDIS
LDLIBS += -lhiredis
endif

# A C++ compiler (optional): umap's C++ Store API (include/umap/store/) is
# header-only, and its test is built when one is found.
HAVE_CXX := $(shell printf 'int main(){return 0;}' | $(CXX) -x c++ - -o /dev/null >/dev/null 2>&1 && echo 1)
ALL_CXXFLAGS := -std=gnu++17 -D_GNU_SOURCE -pthread -Wall -Wextra -Werror -Wno-unused-parameter \
	$(CFLAGS) $(SANFLAGS) -Iinclude -Isrc -MMD -MP

LIB_SRCS := $(sort $(wildcard src/core/*.c src/util/*.c src/runtime/*.c src/track/*.c \
	src/checker/*.c src/image/*.c src/snapshot/*.c src/pager/*.c src/serve/*.c \
	src/migrate/*.c))
TOOL_SRCS := $(sort $(wildcard tools/*.c bench/*.c))
TEST_SRCS := $(sort $(wildcard tests/*.c))
TEST_CXX_SRCS := $(if $(HAVE_CXX),$(sort $(wildcard tests/*.cpp)))
TEST_SCRIPTS := $(filter-out tests/runtests.sh,$(sort $(wildcard tests/*.sh)))
TESTLIB_SRCS := $(sort $(wildcard tests/lib/*.c))
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/obj/%.o)
TESTLIB_OBJS := $(TESTLIB_SRCS:%.c=$(BUILD)/obj/%.o)
CXX_TESTS := $(TEST_CXX_SRCS:tests/%.cpp=$(BUILD)/tests/%)
TESTS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%) $(CXX_TESTS) \
	$(TEST_SCRIPTS:tests/%.sh=$(BUILD)/tests/%)
EXAMPLES := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)

# apps/kv: uffd-kv, a Redis-protocol server on the library (public API
# only).  Its pieces but main.c are an archive the tests and the bench
# link too (the RESP parser, the test client).
KV_SRCS := $(sort $(wildcard apps/kv/*.c))
KV_LIB_OBJS := $(filter-out $(BUILD)/obj/apps/kv/main.o,$(KV_SRCS:%.c=$(BUILD)/obj/%.o))
KV_LIB := $(BUILD)/libkv.a
KV := $(BUILD)/uffd-kv

STATIC := $(BUILD)/libuffd.a
# The same objects unlocalized, for the project's own programs (tools,
# benches, tests), which may use internal helpers.  Never installed.
INTERNAL := $(BUILD)/libuffd-internal.a
SONAME := libuffd.so.$(VERSION_MAJOR)
SHARED := $(BUILD)/libuffd.so.$(VERSION)
TOOL := $(BUILD)/uffd
# The umap-compatible library: LLNL umap's C API over the pager.
UMAP_SRCS := $(sort $(wildcard src/umap/*.c))
UMAP_OBJS := $(UMAP_SRCS:%.c=$(BUILD)/obj/%.o)
UMAP_SHARED := $(BUILD)/libumap.so.1

.PHONY: all check demo install clean fuzz fuzz-targets fuzz-seeds
all: $(STATIC) $(INTERNAL) $(SHARED) $(BUILD)/libuffd.so $(TOOL) $(KV) $(TESTS) $(EXAMPLES) $(BUILD)/libuffd.pc \
	$(if $(UMAP_SRCS),$(BUILD)/libumap.so)

# Objects are rebuilt when the flags change (an optional dependency that
# appears, another compiler), not only when sources do.
FLAGS_FILE := $(BUILD)/.cflags
FLAGS_NOW := $(CC) $(ALL_CFLAGS) $(LDLIBS) $(if $(HAVE_CXX),$(CXX))
$(shell mkdir -p $(BUILD); [ "$$(cat $(FLAGS_FILE) 2>/dev/null)" = "$(FLAGS_NOW)" ] || \
	echo "$(FLAGS_NOW)" > $(FLAGS_FILE))

$(BUILD)/obj/%.o: %.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.cpp $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	$(Q)$(CXX) $(ALL_CXXFLAGS) -c -o $@ $<

# The static library is one relocatable object in which every hidden
# (internal) symbol is made local: a program that links it sees only the
# public uffd_ names, never a now_ns or crc32c of ours to clash with.
$(STATIC): $(LIB_OBJS)
	@echo "  AR      $@"
	@rm -f $@ $(BUILD)/obj/libuffd-all.o
	$(Q)$(LD) -r -o $(BUILD)/obj/libuffd-all.o $^
	$(Q)$(OBJCOPY) --localize-hidden $(BUILD)/obj/libuffd-all.o
	$(Q)$(AR) rcs $@ $(BUILD)/obj/libuffd-all.o

$(INTERNAL): $(LIB_OBJS)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJS) src/libuffd.map
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(SONAME) \
		-Wl,--version-script,src/libuffd.map -Wl,-z,defs \
		-o $@ $(LIB_OBJS) $(LDLIBS)

$(BUILD)/libuffd.so: $(SHARED)
	$(Q)ln -sf libuffd.so.$(VERSION) $(BUILD)/$(SONAME)
	$(Q)ln -sf libuffd.so.$(VERSION) $@

# libumap links libuffd in statically so an umap application needs only it.
$(UMAP_SHARED): $(UMAP_OBJS) $(STATIC) src/umap/libumap.map
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libumap.so.1 \
		-Wl,--version-script,src/umap/libumap.map -Wl,-z,defs \
		-o $@ $(UMAP_OBJS) $(STATIC) $(LDLIBS)

$(BUILD)/libumap.so: $(UMAP_SHARED)
	$(Q)ln -sf libumap.so.1 $@

$(TOOL): $(TOOL_OBJS) $(KV_LIB) $(INTERNAL)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $(TOOL_OBJS) $(KV_LIB) $(INTERNAL) $(LDLIBS)

$(KV_LIB): $(KV_LIB_OBJS)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(KV): $(BUILD)/obj/apps/kv/main.o $(KV_LIB) $(STATIC)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

# C++ tests are umap programs too (umap's C++ Store API).
$(CXX_TESTS): $(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB_OBJS) $(UMAP_OBJS) $(KV_LIB) $(INTERNAL)
	@mkdir -p $(dir $@)
	$(Q)$(CXX) $(ALL_CXXFLAGS) -o $@ $< $(TESTLIB_OBJS) $(UMAP_OBJS) $(KV_LIB) $(INTERNAL) $(LDLIBS)

# The umap tests are umap programs: they link the umap objects too.
$(BUILD)/tests/umap-%: $(BUILD)/obj/tests/umap-%.o $(TESTLIB_OBJS) $(UMAP_OBJS) $(KV_LIB) $(INTERNAL)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(TESTLIB_OBJS) $(UMAP_OBJS) $(KV_LIB) $(INTERNAL) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB_OBJS) $(KV_LIB) $(INTERNAL)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(TESTLIB_OBJS) $(KV_LIB) $(INTERNAL) $(LDLIBS)

$(BUILD)/tests/%: tests/%.sh
	@mkdir -p $(dir $@)
	$(Q)install -m 755 $< $@

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(STATIC)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

$(BUILD)/libuffd.pc: libuffd.pc.in Makefile
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS_PRIVATE@|$(LDLIBS)|' $< > $@

check: all
	$(Q)BUILD=$(BUILD) SRCDIR=$(CURDIR) tests/runtests.sh $(BUILD)/tests $(notdir $(TESTS))

demo: $(TOOL)
	$(TOOL) demo

install: $(STATIC) $(INTERNAL) $(SHARED) $(BUILD)/libuffd.so $(TOOL) $(KV) $(BUILD)/libuffd.pc $(UMAP_SHARED)
	install -d $(DESTDIR)$(INCDIR)/uffd $(DESTDIR)$(INCDIR)/umap $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5
	install -m 644 include/uffd/*.h $(DESTDIR)$(INCDIR)/uffd/
	install -m 644 include/umap/*.h $(DESTDIR)$(INCDIR)/umap/
	install -d $(DESTDIR)$(INCDIR)/umap/store
	install -m 644 include/umap/store/* $(DESTDIR)$(INCDIR)/umap/store/
	install -m 755 $(UMAP_SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libumap.so.1 $(DESTDIR)$(LIBDIR)/libumap.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libuffd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libuffd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libuffd.so
	install -m 644 $(BUILD)/libuffd.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 755 $(TOOL) $(KV) $(DESTDIR)$(BINDIR)/
	install -m 644 man/*.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/*.5 $(DESTDIR)$(MANDIR)/man5/

# Fuzz targets: fuzz/NAME.c becomes build/fuzz/fuzz-NAME (libFuzzer's main),
# and fuzz/seeds.c the program that writes their seed corpora.
FUZZ_BUILD := build/fuzz
FUZZ_SRCS := $(filter-out fuzz/seeds.c,$(sort $(wildcard fuzz/*.c)))
FUZZERS := $(FUZZ_SRCS:fuzz/%.c=$(BUILD)/fuzz-%)

fuzz:
	@command -v clang >/dev/null 2>&1 || { \
		echo "make fuzz: clang is required (libFuzzer); on Debian: apt-get install clang" >&2; \
		exit 1; }
	$(Q)$(MAKE) --no-print-directory CC=clang FUZZING=1 BUILD=$(FUZZ_BUILD) fuzz-targets

fuzz-targets: $(FUZZERS) $(BUILD)/fuzz-seeds

$(BUILD)/fuzz-%: $(BUILD)/obj/fuzz/%.o $(INTERNAL)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(INTERNAL) $(LDLIBS)

$(BUILD)/fuzz-seeds: $(BUILD)/obj/fuzz/seeds.o $(INTERNAL)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(INTERNAL) $(LDLIBS)

# Rewrite the seeds fuzz/seeds.c makes (what a fuzzer finds stays out;
# other targets' seeds, written by hand, are left alone).
SEEDED := image chain store-server store-client
fuzz-seeds: fuzz
	rm -rf $(addprefix fuzz/corpus/,$(SEEDED))
	$(FUZZ_BUILD)/fuzz-seeds fuzz/corpus

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
.SECONDARY:
