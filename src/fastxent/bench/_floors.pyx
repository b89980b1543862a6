# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Memory floors for the bench: the least traffic a pass can have, moved by a
multithreaded copy or read. Bench-only: the production kernels do not carry them."""

from cython.parallel cimport prange
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__x86_64__) || defined(_M_X64)
    #include <immintrin.h>
    /* Copies n bytes, the 16-byte-aligned body with streaming (non-temporal)
     * stores: the lines go to memory without first being read into the cache.
     * SSE2, which every x86-64 has; wider stores fill the same write-combining
     * buffers and move memory no quicker. */
    static void floor_stream_copy(void *dst, const void *src, size_t n)
    {
        char *d = (char *)dst;
        const char *s = (const char *)src;
        size_t head = (16 - (uintptr_t)d % 16) % 16, i;
        if (n < head + 16) {
            memcpy(d, s, n);
            return;
        }
        memcpy(d, s, head);
        for (i = head; i + 64 <= n; i += 64) {
            _mm_stream_si128((__m128i *)(d + i), _mm_loadu_si128((const __m128i *)(s + i)));
            _mm_stream_si128((__m128i *)(d + i + 16), _mm_loadu_si128((const __m128i *)(s + i + 16)));
            _mm_stream_si128((__m128i *)(d + i + 32), _mm_loadu_si128((const __m128i *)(s + i + 32)));
            _mm_stream_si128((__m128i *)(d + i + 48), _mm_loadu_si128((const __m128i *)(s + i + 48)));
        }
        for (; i + 16 <= n; i += 16)
            _mm_stream_si128((__m128i *)(d + i), _mm_loadu_si128((const __m128i *)(s + i)));
        memcpy(d + i, s + i, n - i);
        _mm_sfence(); /* the streamed lines are visible before the copy returns */
    }
    #define FLOOR_CAN_STREAM 1
    #else
    static void floor_stream_copy(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
    #define FLOOR_CAN_STREAM 0
    #endif
    """
    void floor_stream_copy(void *dst, const void *src, size_t n) nogil
    int FLOOR_CAN_STREAM

CAN_STREAM = bool(FLOOR_CAN_STREAM)


def copy_floor(const unsigned char[::1] src, unsigned char[::1] dst, int n_threads,
               bint stream, Py_ssize_t pieces=0):
    """Copies src into dst in n_threads contiguous chunks, by memcpy or, when
    `stream`, with streaming stores: what one read and one write of every byte
    cost, the floor of a fused forward+backward pass. Into fresh memory, the
    threads' first touch also faults the pages in, as an allocating call's do.
    pieces > 0 (not with `stream`): each chunk by memcpy in pieces of that
    many bytes, small enough for memcpy's cached stores (it streams large
    copies), which write into the lines a page fault has just zeroed in the
    cache instead of sending both the zeroes and the copy to memory."""
    cdef Py_ssize_t n = src.shape[0], chunk, t, start, stop, k
    if dst.shape[0] != n:
        raise ValueError(f"dst: expected {n} bytes, got {dst.shape[0]}")
    if n_threads < 1:
        raise ValueError(f"n_threads: expected at least 1, got {n_threads}")
    if pieces < 0 or (pieces and stream):
        raise ValueError(f"pieces: expected 0, or more without stream, got {pieces}")
    if n == 0:
        return
    chunk = (n + n_threads - 1) // n_threads
    with nogil:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            start = t * chunk
            stop = min(n, start + chunk)
            if start < stop:
                if stream:
                    floor_stream_copy(&dst[start], &src[start], stop - start)
                elif pieces:
                    k = start
                    while k < stop:
                        memcpy(&dst[k], &src[k], min(pieces, stop - k))
                        k = k + pieces
                else:
                    memcpy(&dst[start], &src[start], stop - start)


def read_floor(const uint64_t[::1] src, int n_threads):
    """XORs the words of src together in n_threads chunks: what one read of
    every byte costs (an integer reduction vectorises, unlike a float sum),
    the floor of a forward-only pass. Returns the XOR so it cannot be skipped."""
    cdef Py_ssize_t n = src.shape[0], i
    cdef uint64_t acc = 0
    if n_threads < 1:
        raise ValueError(f"n_threads: expected at least 1, got {n_threads}")
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            acc ^= src[i]
    return acc
