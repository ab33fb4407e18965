// Basic types and node-group constants of the ps-lite API.
#ifndef PS_BASE_H_
#define PS_BASE_H_

#include <cstdint>
#include <limits>

#include "ps/internal/utils.h"

namespace ps {

#if PS_USE_KEY32
/*! \brief A key of the key-value store (32-bit build, USE_KEY32=1). */
using Key = uint32_t;
#else
/*! \brief A key of the key-value store. */
using Key = uint64_t;
#endif
/*! \brief The largest key. Server key ranges cover [0, kMaxKey], this key included. */
static const Key kMaxKey = std::numeric_limits<Key>::max();

/*! \brief Node id of the scheduler. */
static const int kScheduler = 1;
/*! \brief Group id of all servers. Groups add up: kServerGroup + kWorkerGroup is both. */
static const int kServerGroup = 2;
/*! \brief Group id of all workers. */
static const int kWorkerGroup = 4;

}  // namespace ps
#endif  // PS_BASE_H_
