// The key-value apps, with ps-lite's API; the include that ps-lite programs name. Each part has
// its own header, which opens with its contract (what blocks, which thread runs callbacks):
//   ps/kv_pairs.h    KVPairs and KVMeta, what workers and servers exchange
//   ps/kv_worker.h   KVWorker: Push, Pull, PushPull, Wait, consistency, filters
//   ps/kv_server.h   KVServer: request handles and Response
//   ps/kv_handles.h  KVServerDefaultHandle, KVServerSyncHandle and their store
#ifndef PS_KV_APP_H_
#define PS_KV_APP_H_

#include "ps/kv_handles.h"
#include "ps/kv_pairs.h"
#include "ps/kv_server.h"
#include "ps/kv_worker.h"

#endif  // PS_KV_APP_H_
