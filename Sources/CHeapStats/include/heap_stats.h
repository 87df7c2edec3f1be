#include <stddef.h>
/// Bytes currently allocated by malloc (glibc mallinfo2), for leak tests.
size_t klaxon_heap_bytes_in_use(void);
