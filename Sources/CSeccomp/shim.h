#ifndef SQUTUN_CSECCOMP_SHIM_H
#define SQUTUN_CSECCOMP_SHIM_H
#include <seccomp.h>
#endif
