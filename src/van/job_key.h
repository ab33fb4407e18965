// The job key: one CURVE key pair that every node of a job holds (the launcher writes it to a
// file only its user can read and names the file in PS_KEY_FILE). Holding it is what admits a
// node to the job's connections.
#ifndef PS_VAN_JOB_KEY_H_
#define PS_VAN_JOB_KEY_H_

#include <string>

#include "ps/status.h"

namespace ps {

// Reads the key file "path" (40 Z85 characters of the secret key, then optionally a newline)
// and derives the public key. Fails, saying which and what to do, when the file cannot be
// read, is readable by other users, or does not hold a key.
Status LoadJobKey(const std::string& path, std::string* public_key, std::string* secret_key);

}  // namespace ps
#endif  // PS_VAN_JOB_KEY_H_
