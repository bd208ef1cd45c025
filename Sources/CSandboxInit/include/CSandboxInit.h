// CSandboxInit: the sandbox's PID 1 as a freestanding program.
//
// The code lives in its own section ("cis_init") and uses no libc, no global data, no string
// literals and no relocations to anything outside that section, so the section's bytes are a
// complete position-independent program (copied at the same offset within a 4 KiB page, which
// aarch64's page-relative ADRP addressing needs; x86_64 has run it, aarch64 only compiles). At start-up CIsolation wraps them in a minimal static
// ELF image in a sealed memfd (cis_init_image_fd), which the sandbox executes as its init: the
// server stays one binary, and init gets its own tiny address space instead of a copy of the
// server's (see docs/isolation.md).
#ifndef CSANDBOXINIT_H
#define CSANDBOXINIT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// init's interface. argv: [anything, program path, program argv...]; envp: the program's
/// environment. Inherited descriptors: 0-2 the program's stdio, CIS_INIT_ERROR_FD the error pipe
/// (a cis_child_error record if a step fails; closed on the program's execve), CIS_INIT_STATUS_FD
/// the status pipe (one cis_program_status when the program has ended). The step numbers are
/// those of cis_step in CIsolation.h (checked there at compile time).
#define CIS_INIT_ERROR_FD 3
#define CIS_INIT_STATUS_FD 4
#define CIS_INIT_STEP_FORK_PROGRAM 22
#define CIS_INIT_STEP_SETSID 23
#define CIS_INIT_STEP_EXEC 24
#define CIS_INIT_STEP_ARGUMENTS 28

/// Where init's code is in this process: `*code` and `*length` bound the section, `*entry` is the
/// offset of the entry point within it. Returns 0, or -1 when init is not implemented for this
/// architecture (only x86_64 and aarch64 are).
int cis_init_code(const unsigned char *_Nullable *_Nonnull code, size_t *_Nonnull length, size_t *_Nonnull entry);

#ifdef __cplusplus
}
#endif
#endif
