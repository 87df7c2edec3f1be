#include <sys/types.h>

/// Starts `path` with posix_spawn: `in_fd`, `out_fd` and `err_fd` become the child's 0, 1 and 2
/// (-1 inherits the parent's), every other descriptor is closed in the child, signals are reset
/// to their defaults and unblocked, and `cwd` (when not NULL) is the child's directory.
/// Returns 0 and sets `*pid`, or an errno value.
int klaxon_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const char *cwd, int in_fd, int out_fd, int err_fd);
