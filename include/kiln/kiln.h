/* kiln/kiln.h — the whole public C API of kiln: include this one header.
 * core.h: status, dtypes, tensors, RNG · graph.h: builder, autodiff, optimizer nodes ·
 * plan.h: compile and run · data.h: data sets, loader · io.h: checkpoints. */
#ifndef KILN_H
#define KILN_H

#include "core.h"
#include "graph.h"
#include "plan.h"
#include "data.h"
#include "io.h"

#define KILN_VERSION "0.1.0"

#endif
