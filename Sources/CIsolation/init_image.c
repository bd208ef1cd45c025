// Wraps the freestanding init (CSandboxInit) in a minimal static ELF image in a sealed memfd, so
// the sandbox can execve it without a second file on disk: the server stays one binary.

#ifndef _GNU_SOURCE
#error "CIsolation must be built with _GNU_SOURCE"
#endif

#include "CIsolation.h"
#include "CSandboxInit.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

/// Load address of the image: 64 KiB-aligned, the largest page size of the supported
/// architectures.
enum { CIS_INIT_BASE = 0x400000, CIS_INIT_PAGE = 0x10000, CIS_INIT_HEADERS = 256 };

/// Where the code goes in the image: at the same offset within a 4 KiB page as in this process.
/// x86_64 addresses code and data relative to the exact instruction, but aarch64's ADRP works in
/// 4 KiB pages (ADRP + ADD), which only lands right if the copy keeps the page offset.
static size_t cis_init_code_offset(const unsigned char *code) {
    size_t offset = (uintptr_t)code & 0xfff;
    return offset < CIS_INIT_HEADERS ? offset + 0x1000 : offset;
}

static int cis_write_all(int fd, const unsigned char *bytes, size_t length) {
    while (length > 0) {
        ssize_t n = write(fd, bytes, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        bytes += n;
        length -= (size_t)n;
    }
    return 0;
}

int cis_init_image_fd(void) {
    const unsigned char *code;
    size_t length, entry;
    if (cis_init_code(&code, &length, &entry) != 0 || length == 0 || entry >= length) {
        errno = ENOSYS;
        return -1;
    }
    size_t code_offset = cis_init_code_offset(code);
    size_t size = code_offset + length;
    unsigned char *image = calloc(1, size);
    if (image == NULL) return -1;

    Elf64_Ehdr *header = (Elf64_Ehdr *)image;
    memcpy(header->e_ident, ELFMAG, SELFMAG);
    header->e_ident[EI_CLASS] = ELFCLASS64;
    header->e_ident[EI_DATA] = ELFDATA2LSB;
    header->e_ident[EI_VERSION] = EV_CURRENT;
    header->e_ident[EI_OSABI] = ELFOSABI_SYSV;
    header->e_type = ET_EXEC;
#if defined(__x86_64__)
    header->e_machine = EM_X86_64;
#elif defined(__aarch64__)
    header->e_machine = EM_AARCH64;
#endif
    header->e_version = EV_CURRENT;
    header->e_entry = CIS_INIT_BASE + code_offset + entry;
    header->e_phoff = sizeof(Elf64_Ehdr);
    header->e_ehsize = sizeof(Elf64_Ehdr);
    header->e_phentsize = sizeof(Elf64_Phdr);
    header->e_phnum = 2;
    Elf64_Phdr *segments = (Elf64_Phdr *)(image + sizeof(Elf64_Ehdr));
    // One read+execute segment: headers and code. init keeps its data on its stack.
    segments[0].p_type = PT_LOAD;
    segments[0].p_flags = PF_R | PF_X;
    segments[0].p_offset = 0;
    segments[0].p_vaddr = CIS_INIT_BASE;
    segments[0].p_paddr = CIS_INIT_BASE;
    segments[0].p_filesz = size;
    segments[0].p_memsz = size;
    segments[0].p_align = CIS_INIT_PAGE;
    // A non-executable stack.
    segments[1].p_type = PT_GNU_STACK;
    segments[1].p_flags = PF_R | PF_W;
    segments[1].p_align = 16;
    memcpy(image + code_offset, code, length);

    int fd = memfd_create("sandbox-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) fd = memfd_create("sandbox-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        int saved = errno;
        free(image);
        errno = saved;
        return -1;
    }
    int failed = cis_write_all(fd, image, size) != 0 || fchmod(fd, 0555) != 0 ||
                 fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0;
    int saved = errno;
    free(image);
    if (failed) {
        close(fd);
        errno = saved;
        return -1;
    }
    // Keep only a read-only descriptor: execve refuses a file open for writing (ETXTBSY).
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int readonly = open(path, O_RDONLY | O_CLOEXEC);
    saved = errno;
    close(fd);
    errno = saved;
    return readonly;
}
