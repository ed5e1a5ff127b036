"""A running job's output, owned in one place: its audio, stream, timeline, live parts and disk.

The worker opens it for a job's plan, appends each finished segment and
finishes it; nothing else writes a running job's files. A segment is one
call here (one thread hop): the disk limit checked, its line in the
timeline, its PCM (synced) and encoded bytes, and its live part for
listeners on other machines. Its times in the timeline go on from what a
resumed job had made before. Every method blocks on disk or the encoder:
call them in a thread.
"""

from __future__ import annotations

import logging

from voxserve.captions import CAPTION_FILES
from voxserve.errors import InsufficientStorage
from voxserve.jobs.files import JobFiles
from voxserve.jobs.models import Job, Progress
from voxserve.jobs.timeline import SegmentLog
from voxserve.jobs.writer import JobAudioWriter
from voxserve.pipeline import Plan
from voxserve.rendering import SegmentTime
from voxserve.values import PCM

log = logging.getLogger(__name__)

#: Bytes of one PCM sample on disk (s16le).
SAMPLE_BYTES = 2


class JobOutput:
    """What one attempt at a job writes, from ``open`` to ``finish`` (or ``close`` on failure)."""

    def __init__(self, files: JobFiles, job: Job, plan: Plan, disk_limit: int) -> None:
        self.files = files
        self.job = job
        self.rate = plan.rate
        self.extension = plan.audio_format.extension
        self.disk_limit = disk_limit
        files.directory(job.id)  # made, on a machine that has not run the job before
        pcm, stream = files.pcm(job.id), files.stream(job.id, self.extension)
        self._writer = JobAudioWriter(pcm, stream, plan.audio_format, self.rate, plan.output_rate)
        self._timeline = SegmentLog(files.segments(job.id))
        self._offset = 0.0  # seconds a resumed job made before this attempt

    def seconds(self, pcm_bytes: int) -> float:
        """The audio that ``pcm_bytes`` of the job's PCM hold."""
        return pcm_bytes / SAMPLE_BYTES / self.rate

    def open(self, progress: Progress) -> Progress:
        """Open to go on from ``progress``; the progress to go on from, which starts again when the
        audio so far is on another machine (a job begun there, with shared storage)."""
        if self.files.pcm_bytes(self.job.id) < progress.bytes_done:
            log.info("job %s: its audio so far is not on this machine; starting it again", self.job.id)
            progress = Progress(segments_total=progress.segments_total, chars_total=progress.chars_total)
        self._writer.open(progress.bytes_done)
        self.files.restart_live(self.job.id, self._writer.stream)
        self._timeline.keep(progress.segments_done)
        self._offset = self.seconds(progress.bytes_done)
        return progress

    def append(self, audio: PCM, made: SegmentTime) -> int:
        """One finished segment and its times in this attempt; the PCM bytes written. Refused with
        InsufficientStorage, before anything is written, when it would pass the disk limit."""
        adding = audio.size * SAMPLE_BYTES
        if self.files.usage() + adding > self.disk_limit:
            raise InsufficientStorage(
                f"job storage reached its limit of {self.disk_limit} bytes while this job ran; "
                "it is retried when there is room, or fails with its partial audio removed"
            )
        self.files.charge(adding)
        self._timeline.append(made.shifted(self._offset).to_dict())
        at = self._writer.stream_bytes
        written, encoded = self._writer.append(audio)
        self.files.put_live(self.job.id, at, encoded)
        return written

    def finish(self) -> None:
        """The finished audio file and its captions, put where finished jobs' files are."""
        output = self.files.output(self.job.id, self.job.name, self.extension)
        self._writer.finish(output)
        captions = {kind: self.files.captions(self.job.id, self.job.name, *kind) for kind in CAPTION_FILES}
        self._timeline.write_captions(captions)
        self.files.publish(self.job.id, [output, *captions.values()])

    def close(self) -> None:
        self._writer.close()
