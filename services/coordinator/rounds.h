/* The federated round state machine of one job (training.update fedavg):
 * select devices through the selectors, wait for their reports until the
 * round's goal (min_reports) or its deadline, tell every shard to commit
 * exactly the same set (or to abandon the round), evaluate the global model
 * centrally, and retry abandoned rounds with other devices up to
 * max_attempts. Runs on the coordinator's event loop; see docs/architecture.md
 * "Federated rounds". */
#ifndef PANDO_COORD_ROUNDS_H
#define PANDO_COORD_ROUNDS_H

#include <stddef.h>
#include <stdint.h>

#include "pando.pb-c.h"
#include "pando/psclient.h"
#include "pando/rpc.h"
#include "pando/spec.h"

typedef struct pd_rounds pd_rounds;

/* What the rounds need from the coordinator. */
typedef struct pd_rounds_env {
  pd_loop *loop; /* client calls complete here */
  /* Writes the addresses of up to `max` live selectors to `out` (borrowed
   * until the next call) and returns their number. */
  size_t (*selectors)(void *user, const char **out, size_t max);
  /* The job ends: `state` is a Pando__V1__JobState. */
  void (*finish)(void *user, const char *job, int state, const char *message);
  /* The history changed (an attempt closed, an evaluation ended): the job is
   * to be stored again. May be NULL. */
  void (*changed)(void *user, const char *job);
  void *user;
} pd_rounds_env;

/* Rounds of `job` (spec and yaml copied) whose model lives in the `n` shards
 * `shards` (copied). `wait_sec`: how long a round may wait for enough
 * eligible devices (cluster.wait_timeout). */
pd_rounds *pd_rounds_new(const pd_rounds_env *env, const char *job, const pd_job_spec *spec,
                         const char *spec_yaml, const pd_shard_range *shards, uint32_t n);
/* The job's token (copied; "" or NULL: none), handed to the devices in
 * their RoundTask for their Pulls and Pushes. */
void pd_rounds_set_job_token(pd_rounds *rounds, const char *token);
/* Waits for the calls and the evaluation in flight and frees everything. */
void pd_rounds_free(pd_rounds *rounds);
/* Whether calls or the evaluation of stopped `rounds` are still in flight
 * (pd_rounds_free would wait for them). */
int pd_rounds_busy(const pd_rounds *rounds);
/* The job ended (failed, cancelled): start nothing more. */
void pd_rounds_stop(pd_rounds *rounds);
/* After a roll back of every shard to the checkpoint of `committed` rounds
 * (a recovery from a dead server, or a restarted coordinator) for the job's
 * `attempt` (> 0, each roll back's one more: the devices' pulls and pushes
 * carry it, RoundTask.attempt): run the rounds on from round committed + 1,
 * on the shards `shards` (`n` of them, copied: a replacement server may have
 * a new address). Round ids must only grow across roll backs (a device of a
 * rolled back round may still push under its id): attempt a's are
 * a * 2^32 + 1, 2, ... The history keeps the records of rounds <= committed.
 * Takes effect at the next pd_rounds_cron once no call and no evaluation of
 * the stopped rounds is in flight; the state is WAITING then. */
void pd_rounds_resume(pd_rounds *rounds, const pd_shard_range *shards, uint32_t n,
                      uint32_t committed, uint32_t attempt);
/* The records of every attempt so far (borrowed until the rounds change),
 * for the coordinator's store; returns their number. */
size_t pd_rounds_history(const pd_rounds *rounds, const Pando__V1__RoundRecord **out);
/* Sets the history to the `n` records `records` (copied; the store's, after
 * a coordinator restart), before pd_rounds_resume. */
void pd_rounds_set_history(pd_rounds *rounds, const Pando__V1__RoundRecord *records, size_t n);
/* Periodic work: population polls, deadlines, the evaluation's end. */
void pd_rounds_cron(pd_rounds *rounds);
/* A device's report. Fills `ack`; the round closes (commits) from here as
 * soon as it has min_reports reports. Returns 0; -EACCES with a message when
 * its report_secret is not its device's for its round (nothing changes); or
 * -1 with a message for a report that is not for this job's rounds (an
 * unknown device). */
int pd_rounds_report(pd_rounds *rounds, const Pando__V1__DeviceReport *report,
                     Pando__V1__DeviceReportAck *ack, char *err, size_t errlen);
/* Sets the rounds fields of `st` (round_history borrows from `rounds` until
 * it changes) and a progress message in `message` when non-NULL. */
void pd_rounds_status(pd_rounds *rounds, Pando__V1__JobStatus *st);
/* The last committed round's test accuracy (NAN before any evaluation). */
double pd_rounds_last_accuracy(const pd_rounds *rounds);

#endif
