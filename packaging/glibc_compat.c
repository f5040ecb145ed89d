/* librazor-glibc-compat.so: the two glibc functions newer than glibc 2.34 that the C++ runtime of the build
 * machine calls, for the portable bundle (scripts/bundle.sh, docs/bundle.md).
 *
 * The bundle carries the build machine's libstdc++ and libgcc_s (a GPU server's may be older than what razor
 * was compiled against). Debian 12's were built against glibc 2.36 and call arc4random (GLIBC_2.36,
 * std::random_device) and _dl_find_object (GLIBC_2.35, the unwinder: every thrown exception). bundle.sh marks
 * those version references weak and unversioned (scripts/elf_glibc_floor.py) and adds this library to the
 * NEEDED entries of the files that call them, so that they load on glibc 2.34 (RHEL 9, Ubuntu 22.04 has
 * 2.35). On a newer glibc the C library comes first in the global lookup scope (the executable needs it
 * directly) and its own definitions are the ones used; on an older one these are.
 *
 * Both follow glibc's documented contracts: arc4random returns 32 random bits from the kernel's generator
 * (getrandom(2), glibc 2.25); _dl_find_object(pc, result) fills *result for the loaded object whose mapping
 * [dlfo_map_start, dlfo_map_end) holds pc (start rounded down to a page as the loader maps it, end the last
 * segment's end) and returns 0, or returns -1 when no object holds pc. dlfo_eh_frame is the object's
 * PT_GNU_EH_FRAME segment (NULL when it has none). tests/util/test_glibc_compat.cpp checks it against glibc's
 * own _dl_find_object on this machine.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

#if !__GLIBC_PREREQ(2, 35)
/* The x86-64 layout of glibc's struct dl_find_object (<dlfcn.h> of glibc 2.35+; 2.34's headers lack it). */
struct dl_find_object {
  unsigned long long dlfo_flags;
  void* dlfo_map_start;
  void* dlfo_map_end;
  struct link_map* dlfo_link_map;
  void* dlfo_eh_frame;
  unsigned long long reserved[7];
};
#endif

struct find_state {
  uintptr_t pc;
  uintptr_t start, end, eh_frame;
  int found;
};

static int find_cb(struct dl_phdr_info* info, size_t size, void* data) {
  (void)size;
  struct find_state* s = (struct find_state*)data;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t lo = UINTPTR_MAX, hi = 0, eh = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD) {
      const uintptr_t b = info->dlpi_addr + (ph->p_vaddr & ~(page - 1));
      const uintptr_t e = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
      if (b < lo) lo = b;
      if (e > hi) hi = e;
    } else if (ph->p_type == PT_GNU_EH_FRAME) {
      eh = info->dlpi_addr + ph->p_vaddr;
    }
  }
  if (lo == UINTPTR_MAX || s->pc < lo || s->pc >= hi) return 0;
  s->start = lo;
  s->end = hi;
  s->eh_frame = eh;
  s->found = 1;
  return 1;
}

__attribute__((visibility("default"))) int _dl_find_object(void* pc, struct dl_find_object* result) {
  struct find_state s = {(uintptr_t)pc, 0, 0, 0, 0};
  dl_iterate_phdr(find_cb, &s);
  if (!s.found) return -1;
  Dl_info info;
  struct link_map* map = NULL;
  if (!dladdr1(pc, &info, (void**)&map, RTLD_DL_LINKMAP)) map = NULL;
  result->dlfo_flags = 0;
  result->dlfo_map_start = (void*)s.start;
  result->dlfo_map_end = (void*)s.end;
  result->dlfo_link_map = map;
  result->dlfo_eh_frame = (void*)s.eh_frame;
  return 0;
}

__attribute__((visibility("default"))) uint32_t arc4random(void) {
  uint32_t v;
  size_t got = 0;
  while (got < sizeof v) {
    ssize_t n = getrandom((char*)&v + got, sizeof v - got, 0);
    if (n > 0) {
      got += (size_t)n;
    } else if (n < 0 && errno != EINTR) {
      abort(); /* glibc's arc4random terminates too when the kernel has no generator */
    }
  }
  return v;
}
