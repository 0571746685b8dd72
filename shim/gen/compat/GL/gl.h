/*
 * Stand-in for <GL/gl.h>, used only by the build-time stub type check
 * (shim_stubcheck*.c, see gen_exports.sh) on machines without OpenGL
 * headers.  It is searched after the system directories (-idirafter), so a
 * real <GL/gl.h> wins.  cuda_gl_interop.h needs only these two types.
 */
#ifndef TR_COMPAT_GL_GL_H
#define TR_COMPAT_GL_GL_H
typedef unsigned int GLenum;
typedef unsigned int GLuint;
#endif
