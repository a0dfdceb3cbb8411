/* The shared library exports the C API of mgl_core; this file gives it a source. */
