"""What a synthesis costs, once its caller is known (:mod:`voxserve.api.auth`): speech planned
within the key's audio limit, moderated and charged its characters, and given them back when it
made no audio; a job's characters charged once it has passed every check, refunded when it is not
stored.
"""

from collections.abc import Awaitable, Callable

from voxserve.api.streaming import Caller
from voxserve.errors import PayloadTooLarge
from voxserve.pipeline import Plan, SpeechRequest, Stats
from voxserve.security.guard import Principal
from voxserve.services import Services


async def admitted_plan(
    services: Services,
    principal: Principal,
    request: SpeechRequest,
    listening: bool = False,
    sentence: bool = False,
) -> tuple[Plan, dict[str, str], Caller]:
    """A synthesis request planned (within the key's audio limit), moderated and charged: its plan,
    the limit headers, and its caller (for the log line, and to settle when its stream ends). One
    that fails before any audio is made (the engine failed or was busy) gets its characters back: the
    client got an error, not speech. It still counts as a request, and a client that hangs up first
    gets nothing back (its segment may already have cost engine time). ``listening``: the client
    plays the audio as it streams (its first sentence may start with a short piece). ``sentence``:
    one sentence of a text stream, which was admitted whole (one request, one concurrent stream,
    settled when it closes): only the sentence's characters are charged."""
    guard = services.guard
    quota = guard.quota(principal)
    pipeline = services.pipeline
    plan = await pipeline.plan_in_thread(request, quota.max_audio_seconds, principal.viewer, listening)
    await guard.moderation.check(request.input)
    admitted = await guard.admit(principal, plan.chars, stream=not sentence, request=not sentence)

    def ended(stats: Stats) -> None:
        if not sentence:
            guard.settle(principal, admitted, stats.audio_seconds, stats.elapsed)
        if stats.first_audio is None and not stats.client_left:
            guard.refund(principal, admitted, plan.chars, characters_only=True)

    return plan, admitted.headers, Caller(principal.client, principal.owner, ended)


def job_charge(
    services: Services, principal: Principal, request: SpeechRequest
) -> Callable[[Plan], Awaitable[Callable[[], None]]]:
    """For a job: the key's longest job checked now; the charge of its characters for the submitter
    to make once the job has passed every check (moderation first), which gives the refund."""
    guard = services.guard
    limit = guard.quota(principal).max_job_chars
    if limit is not None and len(request.input) > limit:
        raise PayloadTooLarge(
            f"input is {len(request.input)} characters; this key's limit for a job is {limit}", param="input"
        )

    async def charge(plan: Plan) -> Callable[[], None]:
        await guard.moderation.check(request.input)
        admitted = await guard.admit(principal, plan.chars)
        return lambda: guard.refund(principal, admitted, plan.chars)

    return charge
