# The test workers' task (run as `sh tests/worker/task.sh` by the shell executor): report
# progress, sleep input.seconds, fail the first attempt when input.fail_first is set, log
# the side effect (one line per attempt that really finished), print a JSON result.
echo "SWARM_PROGRESS 0.1 started" >&2
sleep "${SWARM_INPUT_SECONDS:-0}"
if [ -n "${SWARM_INPUT_FAIL_FIRST:-}" ] && [ ! -e "$SWARM_TEST_DIR/$SWARM_TASK_ID.failed" ]; then
    touch "$SWARM_TEST_DIR/$SWARM_TASK_ID.failed"
    echo "first attempt of $SWARM_TASK_ID fails on purpose" >&2
    exit 7
fi
echo "$SWARM_TASK_ID $SWARM_FENCING_TOKEN $SWARM_WORKER_NAME" >> "$SWARM_TEST_DIR/effects.log"
printf '{"by": "%s", "token": %s, "task": "%s"}\n' \
    "$SWARM_WORKER_NAME" "$SWARM_FENCING_TOKEN" "$SWARM_TASK_ID"
