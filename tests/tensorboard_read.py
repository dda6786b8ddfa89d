"""Reads a TensorBoard event file with TensorBoard itself, for tests/tensorboard.rs.

Usage: python3 tests/tensorboard_read.py EVENT_FILE_OR_DIRECTORY

First reads every record with TensorBoard's record reader
(tensorboard.compat.tensorflow_stub.pywrap_tensorflow.PyRecordReader_New),
which checks the masked CRC-32C of each record's length and data: on a
mismatch it prints "DataLossError: ..." to stderr and exits 1. (TensorBoard's
loaders stop quietly at such a record, taking it for a file still being
written, so the check is made here first.)

Then loads the file the way TensorBoard's scalar view does
(event_processing.event_accumulator.EventAccumulator, with its default
purge_orphaned_data) and prints one JSON object: {"records": N,
"file_version": F, "scalars": [[tag, step, value], ...]}, scalars sorted by
tag then step (as the accumulator keeps them). A directory is read as
TensorBoard reads a run: every event file in it, in the order of their
names; "records" counts the records of all of them.

Needs the pinned packages of third_party/tensorboard-requirements.txt.
"""

import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow


def count_records(path):
    reader = pywrap_tensorflow.PyRecordReader_New(path)
    records = 0
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return records
        records += 1


def event_files(path):
    if not os.path.isdir(path):
        return [path]
    names = sorted(n for n in os.listdir(path) if "tfevents" in n)
    return [os.path.join(path, n) for n in names]


def main():
    path = sys.argv[1]
    try:
        records = sum(count_records(f) for f in event_files(path))
    except errors.DataLossError as e:
        print(f"DataLossError: {e.message}", file=sys.stderr)
        sys.exit(1)
    accumulator = event_accumulator.EventAccumulator(
        path, size_guidance={event_accumulator.SCALARS: 0}
    )
    accumulator.Reload()
    scalars = [
        [tag, event.step, event.value]
        for tag in sorted(accumulator.Tags()["scalars"])
        for event in accumulator.Scalars(tag)
    ]
    print(
        json.dumps(
            {
                "records": records,
                "file_version": accumulator.file_version,
                "scalars": scalars,
            }
        )
    )


if __name__ == "__main__":
    main()
