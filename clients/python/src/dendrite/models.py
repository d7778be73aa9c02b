# Generated from openapi.yaml by scripts/generate.py (datamodel-code-generator): do not edit.

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType


class Backup(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    name: Annotated[str, Field(description="The file's name in the backup folder.")]
    bytes: Annotated[int, Field(description="The file's size.", ge=0)]
    patterns: Annotated[int, Field(description="The patterns the backup holds.", ge=0)]
    last_write: Annotated[
        int,
        Field(
            description="The number of the last write the backup holds; writes (stores, forgets, deletions, new spaces) are numbered from 1 as they commit.",
            ge=0,
        ),
    ]


class Backup1(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    name: str
    bytes: Annotated[int, Field(ge=0)]


class BackupList(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    backups: list[Backup1]


Name = TypeAliasType(
    "Name",
    Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ],
)


class Probability(BaseModel):
    """
    A probability. `value` is the probability as a double, which underflows to 0 below about
    1e-308; `log10` is its base-10 logarithm, which stays finite and exact however small the
    probability, and is null only when the probability is exactly zero.

    """

    model_config = ConfigDict(
        extra="ignore",
    )
    value: Annotated[float, Field(ge=0.0, le=1.0)]
    log10: Annotated[Optional[float], Field(le=0.0)]


class ExpectedCount(BaseModel):
    """
    A non-negative expected count in the same `{value, log10}` shape as `Probability` (it may be
    above 1): `value` may underflow to 0 while `log10` stays finite; `log10` is null only for
    an exact zero.

    """

    model_config = ConfigDict(
        extra="ignore",
    )
    value: Annotated[float, Field(ge=0.0)]
    log10: Optional[float]


ActiveBit = TypeAliasType("ActiveBit", Annotated[int, Field(ge=0, le=16777215)])


ActiveBits = TypeAliasType(
    "ActiveBits",
    Annotated[
        list[ActiveBit],
        Field(
            description="The indices of a code's active bits, each in 0..input_size, without repeats; at most 16384 of them.",
            max_length=16384,
        ),
    ],
)
"""
The indices of a code's active bits, each in 0..input_size, without repeats; at most 16384 of them.
"""


SortedBit = TypeAliasType("SortedBit", Annotated[int, Field(ge=0, le=16777215)])


SortedBits = TypeAliasType(
    "SortedBits",
    Annotated[
        list[SortedBit],
        Field(description="Bit indices in ascending order, without repeats."),
    ],
)
"""
Bit indices in ascending order, without repeats.
"""


class Problem(BaseModel):
    """
    An RFC 9457 problem detail. `index` names the position (from 0) of the first bad item of a
    batch; `field` names the offending field or query parameter; `value` repeats the offending
    value.

    """

    model_config = ConfigDict(
        extra="ignore",
    )
    type: Annotated[
        str, Field(description="A URI reference identifying the kind of problem.")
    ]
    title: Annotated[str, Field(description="A short summary of the kind of problem.")]
    status: Annotated[int, Field(description="The HTTP status code.", ge=400, le=599)]
    detail: Annotated[
        str,
        Field(description="What went wrong with this request, for a person to read."),
    ]
    index: Annotated[
        Optional[int],
        Field(description="The position of the first bad item in a batch.", ge=0),
    ] = None
    value: Annotated[
        Optional[Any],
        Field(description="The offending value, of whatever type it had."),
    ] = None
    field: Annotated[
        Optional[str],
        Field(description="The name of the offending field or parameter."),
    ] = None


class Health(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    status: Literal["ok"]


class Ready(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    status: Literal["ready"]


ErrorsByStatusAdditionalProperty = TypeAliasType(
    "ErrorsByStatusAdditionalProperty", Annotated[int, Field(ge=1)]
)


IntervalItem = TypeAliasType("IntervalItem", Annotated[float, Field(ge=0.0, le=1.0)])


class Line(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    check: Annotated[
        str,
        Field(
            description="random_inputs, stored_patterns_cross_match, or miss_at_N_percent_noise."
        ),
    ]
    description: str
    trials: Annotated[int, Field(ge=0)]
    events: Annotated[int, Field(ge=0)]
    observed_rate: Annotated[float, Field(ge=0.0, le=1.0)]
    interval: Annotated[
        list[IntervalItem],
        Field(
            description="The observed rate's 99.9% Wilson interval.",
            max_length=2,
            min_length=2,
        ),
    ]
    predicted_rate: Annotated[float, Field(ge=0.0)]
    verdict: Literal["consistent", "optimistic", "pessimistic"]
    factor: Annotated[
        float,
        Field(
            description="About how far off the prediction is (1 when consistent).",
            ge=0.0,
        ),
    ]


class Calibration(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    space: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    sample: Annotated[int, Field(description="Stored patterns sampled.", ge=0)]
    random_inputs: Annotated[int, Field(description="Random inputs asked.", ge=0)]
    lines: list[Line]


class SpaceStats(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    name: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    neurons: Annotated[int, Field(ge=0)]
    segments: Annotated[int, Field(ge=0)]
    patterns: Annotated[int, Field(ge=0)]
    synapses: Annotated[int, Field(ge=0)]
    memory_bytes: Annotated[
        int,
        Field(
            description="The memory the space takes, by the engine's own estimate.",
            ge=0,
        ),
    ]
    mean_patterns_per_segment: Annotated[
        float, Field(description="Patterns per segment; 0 without segments.", ge=0.0)
    ]
    max_patterns_per_segment: Annotated[
        int,
        Field(description="The most patterns one segment of the space holds.", ge=0),
    ]
    segments_at_capacity: Annotated[
        int,
        Field(
            description="Segments that would most likely not take one more random pattern.",
            ge=0,
        ),
    ]


class LatencyWindow(BaseModel):
    """
    Latency percentiles over the last minute, in milliseconds, each the upper edge of a bucket about 12% wide; null without requests.
    """

    model_config = ConfigDict(
        extra="ignore",
    )
    count: Annotated[int, Field(description="Requests in the last minute.", ge=0)]
    p50_ms: Annotated[Optional[float], Field(ge=0.0)]
    p90_ms: Annotated[Optional[float], Field(ge=0.0)]
    p99_ms: Annotated[Optional[float], Field(ge=0.0)]


class Analysis(BaseModel):
    """
    Every quantity of the theory for one set of parameters (see `GET /v1/theory`).
    """

    model_config = ConfigDict(
        extra="ignore",
    )
    n: Annotated[int, Field(description="Bits in the input space.", ge=1)]
    a: Annotated[int, Field(description="Active bits of an input.", ge=1)]
    s: Annotated[
        int, Field(description="Synapses a segment samples from one pattern.", ge=1)
    ]
    theta: Annotated[int, Field(description="The threshold.", ge=1)]
    patterns: Annotated[
        int, Field(description="M, patterns stored on one segment.", ge=1)
    ]
    segments: Annotated[int, Field(description="K, segments on one neuron.", ge=1)]
    noise_bits: Annotated[
        int,
        Field(
            description="v, active bits of a stored pattern replaced by noise.", ge=0
        ),
    ]
    target: Annotated[
        Optional[float],
        Field(
            description="The target false-match probability; present only when given.",
            gt=0.0,
            le=1.0,
        ),
    ] = None
    log10_distinct_patterns: Annotated[
        float, Field(description="log10 C(n, a), the number of distinct inputs.")
    ]
    segment_false_match: Annotated[
        Probability,
        Field(
            description="The chance that a random input reaches theta on a segment holding one pattern's min(s, a) synapses."
        ),
    ]
    union_expected_synapses: Annotated[
        float,
        Field(
            description="The expected number of distinct synapses once a segment holds M patterns.",
            ge=0.0,
        ),
    ]
    union_false_match: Annotated[
        Probability,
        Field(
            description="The false-match chance of such a segment at its expected synapse count rounded halves up (the paper's way)."
        ),
    ]
    union_false_match_exact: Annotated[
        Probability,
        Field(
            description="The same chance averaged over the distribution of the segment's synapse count."
        ),
    ]
    neuron_false_match: Annotated[
        Probability,
        Field(
            description="The chance that a random input matches any of K such segments."
        ),
    ]
    false_miss: Annotated[
        Probability,
        Field(
            description="The chance that a segment stops recognising its pattern when v of its active bits are replaced; exactly 0 when v <= s - theta."
        ),
    ]
    max_patterns_per_segment: Annotated[
        Optional[int],
        Field(
            description="The largest M whose union_false_match stays at or under the target; null when no M exceeds it. Present only with a target.",
            ge=0,
        ),
    ] = None
    threshold_min_error: Annotated[
        int,
        Field(
            description="The theta in 1..=s that minimises false match plus false miss at this noise (ties go to the larger theta).",
            ge=1,
        ),
    ]
    threshold_for_target: Annotated[
        Optional[int],
        Field(
            description="The smallest theta whose segment_false_match meets the target; null when none does. Present only with a target.",
            ge=1,
        ),
    ] = None


class SpaceCounts(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    neurons: Annotated[int, Field(ge=0)]
    segments: Annotated[int, Field(ge=0)]
    patterns: Annotated[int, Field(ge=0)]
    synapses: Annotated[int, Field(ge=0)]
    memory_bytes: Annotated[
        int,
        Field(
            description="The memory the space takes, by the engine's own estimate.",
            ge=0,
        ),
    ]


class SpaceTheory(BaseModel):
    """
    The theory for this space's parameters.
    """

    model_config = ConfigDict(
        extra="ignore",
    )
    segment_false_match: Annotated[
        Probability,
        Field(
            description="The chance that a random input matches a segment holding one pattern."
        ),
    ]
    max_patterns_per_segment: Annotated[
        Optional[int],
        Field(
            description="The most patterns a segment holds while its union false match stays within max_false_match; null when unlimited.",
            ge=0,
        ),
    ]
    false_miss_at_20_percent_noise: Annotated[
        Probability,
        Field(
            description="The chance that a stored pattern is missed when 20% of its active bits are replaced."
        ),
    ]
    threshold_min_error: Annotated[
        int,
        Field(
            description="The threshold that minimises false match plus false miss at 20% noise.",
            ge=1,
        ),
    ]
    threshold_for_target: Annotated[
        Optional[int],
        Field(
            description="The smallest threshold whose one-pattern false match meets max_false_match; null when none does.",
            ge=1,
        ),
    ]


class Code(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    active: Annotated[list[SortedBit], Field(description="The record's bits, sorted.")]
    fields: Annotated[
        dict[str, SortedBits],
        Field(
            description="Per field, the sorted bits it contributed (empty when the record leaves it out)."
        ),
    ]


class TimeComponent(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    active_bits: Annotated[int, Field(ge=1)]
    resolution: Annotated[Optional[float], Field(gt=0.0)] = None
    radius: Annotated[Optional[float], Field(gt=0.0)] = None


class FieldMeaning(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    active_bits: Annotated[int, Field(ge=1)]
    recognised_bits_changed: Annotated[
        int,
        Field(
            description="The most of the field's bits a change may replace while a stored record is still recognised with probability at least 99%.",
            ge=0,
        ),
    ]
    recognition_radius: Annotated[
        Optional[float],
        Field(
            description="The largest change, in `unit`, within which a stored record is still recognised with\nprobability at least 99% when only this field changes (for a time field, a shift of\nthe timestamp, leaving the weekend flag aside; for a vector, a cosine distance); null\nwhere no change of the field alone makes a record unrecognised, and for categories\nand texts, which have no distance.\n",
            ge=0.0,
        ),
    ]
    unit: Annotated[
        Optional[str],
        Field(
            description="The radius's unit (`minutes` for a time field, `cosine distance` for a vector); absent for a number, whose radius is in its own units."
        ),
    ] = None
    match_if_changed_entirely: Annotated[
        Probability,
        Field(
            description="The chance a stored record is still recognised when this field alone takes an unrelated value."
        ),
    ]
    chance_overlap_bits: Annotated[
        float,
        Field(
            description="The bits this field adds, on average, to the chance overlap of two unrelated records.",
            ge=0.0,
        ),
    ]
    warning: Annotated[
        Optional[str],
        Field(
            description="Present when the field alone cannot tell records apart (a record differing only in it is still recognised with probability at least 0.5)."
        ),
    ] = None


ActiveItem = TypeAliasType("ActiveItem", Annotated[int, Field(ge=0, le=16777215)])


class PatternRequest1(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    active: Annotated[
        list[ActiveItem],
        Field(
            description="The pattern's active bits, in any order. Rejected with 422 when empty, when an index is\nnegative or not below input_size, when an index repeats, or when there are fewer\nactive bits than the space's threshold.\n",
            max_length=16384,
            min_length=1,
        ),
    ]
    record: Annotated[
        Optional[dict[str, Any]],
        Field(
            description="Field values for the space's encoder, in place of `active` (give exactly one of the\ntwo): the record's code is the pattern. Rejected with 422 (field `record`) when the\nspace has no encoder, when a field is unknown, has the wrong type or a value the\nfield cannot encode (the detail names it), or when both or neither of `active` and\n`record` are given.\n"
        ),
    ] = None
    id: Annotated[
        Optional[str],
        Field(
            description="The pattern's id within the neuron; assigned by the service when omitted.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ] = None
    metadata: Optional[dict[str, Any]] = None


class PatternRequest2(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    active: Annotated[
        Optional[list[ActiveItem]],
        Field(
            description="The pattern's active bits, in any order. Rejected with 422 when empty, when an index is\nnegative or not below input_size, when an index repeats, or when there are fewer\nactive bits than the space's threshold.\n",
            max_length=16384,
            min_length=1,
        ),
    ] = None
    record: Annotated[
        dict[str, Any],
        Field(
            description="Field values for the space's encoder, in place of `active` (give exactly one of the\ntwo): the record's code is the pattern. Rejected with 422 (field `record`) when the\nspace has no encoder, when a field is unknown, has the wrong type or a value the\nfield cannot encode (the detail names it), or when both or neither of `active` and\n`record` are given.\n"
        ),
    ]
    id: Annotated[
        Optional[str],
        Field(
            description="The pattern's id within the neuron; assigned by the service when omitted.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ] = None
    metadata: Optional[dict[str, Any]] = None


PatternRequest = TypeAliasType(
    "PatternRequest", Union[PatternRequest1, PatternRequest2]
)


class StoredPattern(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    id: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    neuron: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    segment: Annotated[
        int,
        Field(
            description="The number of the segment within the neuron that holds the pattern, from 0.",
            ge=0,
        ),
    ]
    active: Annotated[
        list[SortedBit], Field(description="The pattern's active bits, sorted.")
    ]
    synapses: Annotated[
        list[SortedBit],
        Field(description="The active bits sampled as synapses, sorted."),
    ]
    segment_false_match: Annotated[
        Probability,
        Field(
            description="The chance that a random input matches the pattern's segment, as it is now."
        ),
    ]
    neuron_false_match: Annotated[
        Probability,
        Field(
            description="The chance that a random input matches any segment of the neuron, as it is now."
        ),
    ]
    metadata: Annotated[
        Optional[dict[str, Any]],
        Field(
            description="The metadata stored with the pattern; absent when it has none."
        ),
    ] = None


class PatternBatchItem1(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    neuron: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    active: Annotated[
        list[ActiveItem],
        Field(
            description="The indices of a code's active bits, each in 0..input_size, without repeats; at most 16384 of them.",
            max_length=16384,
            min_length=1,
        ),
    ]
    record: Optional[dict[str, Any]] = None
    id: Annotated[
        Optional[str],
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ] = None
    metadata: Optional[dict[str, Any]] = None


class PatternBatchItem2(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    neuron: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    active: Annotated[
        Optional[list[ActiveItem]],
        Field(
            description="The indices of a code's active bits, each in 0..input_size, without repeats; at most 16384 of them.",
            max_length=16384,
            min_length=1,
        ),
    ] = None
    record: dict[str, Any]
    id: Annotated[
        Optional[str],
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ] = None
    metadata: Optional[dict[str, Any]] = None


class PatternBatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    patterns: Annotated[
        list[Union[PatternBatchItem1, PatternBatchItem2]],
        Field(max_length=10000, min_length=1),
    ]


class PatternBatchResult(BaseModel):
    """
    A StoredPattern plus whether this request created it.
    """

    model_config = ConfigDict(
        extra="ignore",
    )
    created: Annotated[
        bool,
        Field(
            description="True when this request stored the pattern; false when it was already stored."
        ),
    ]
    id: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    neuron: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    segment: Annotated[int, Field(ge=0)]
    active: Annotated[
        list[SortedBit],
        Field(description="Bit indices in ascending order, without repeats."),
    ]
    synapses: Annotated[
        list[SortedBit],
        Field(description="Bit indices in ascending order, without repeats."),
    ]
    segment_false_match: Probability
    neuron_false_match: Probability
    metadata: Optional[dict[str, Any]] = None


class PatternBatchResponse(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    results: Annotated[
        list[PatternBatchResult],
        Field(description="One result per item, in the order of the request."),
    ]


class PatternBatchSummary(BaseModel):
    """
    A batch item's result under `Prefer: return=minimal`.
    """

    model_config = ConfigDict(
        extra="ignore",
    )
    created: Annotated[
        bool,
        Field(
            description="True when this request stored the pattern; false when it was already stored."
        ),
    ]
    id: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    neuron: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    segment: Annotated[
        int,
        Field(
            description="The number of the segment within the neuron that holds the pattern, from 0.",
            ge=0,
        ),
    ]


class PatternBatchSummaryResponse(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    results: Annotated[
        list[PatternBatchSummary],
        Field(description="One result per item, in the order of the request."),
    ]


class NeuronSummary(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    name: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    patterns: Annotated[int, Field(ge=0)]
    segments: Annotated[int, Field(ge=0)]


class NeuronList(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    neurons: Annotated[
        list[NeuronSummary], Field(description="One page of neurons, sorted by name.")
    ]
    next: Annotated[
        Optional[str],
        Field(
            description="The value of `after` for the next page; null on the last page.",
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]


class PatternList(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    patterns: Annotated[
        list[StoredPattern],
        Field(
            description="One page of a neuron's patterns, in the order of their ids (as strings)."
        ),
    ]
    next: Annotated[
        Optional[str],
        Field(
            description="The value of `after` for the next page; null on the last page.",
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]


class SegmentReport(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    segment: Annotated[
        int, Field(description="The segment's number within the neuron, from 0.", ge=0)
    ]
    patterns: Annotated[
        list[Name], Field(description="The ids of the patterns the segment holds.")
    ]
    synapses: Annotated[
        int,
        Field(
            description="Distinct synapses on the segment (the union over its patterns).",
            ge=0,
        ),
    ]
    false_match: Annotated[
        Probability,
        Field(description="The chance that a random input matches this segment."),
    ]


class FalseMissAtNoise(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    noise: Annotated[
        float,
        Field(
            description="The fraction of a pattern's active bits replaced.",
            ge=0.0,
            le=1.0,
        ),
    ]
    noise_bits: Annotated[
        int,
        Field(
            description="The number of active bits replaced at that fraction (halves rounded up).",
            ge=0,
        ),
    ]
    probability: Annotated[
        Probability,
        Field(
            description="The chance that a stored pattern is no longer recognised at this noise."
        ),
    ]


class NeuronReport(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    name: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    patterns: Annotated[int, Field(description="Patterns stored on the neuron.", ge=0)]
    segment_count: Annotated[
        int, Field(description="Segments on the neuron, all pages together.", ge=0)
    ]
    segments: Annotated[
        list[SegmentReport],
        Field(description="The page of the neuron's segments asked for, by number."),
    ]
    next_segment: Annotated[
        Optional[int],
        Field(
            description="The value of `segments_after` for the next page; null on the last page.",
            ge=0,
        ),
    ]
    false_match: Annotated[
        Probability,
        Field(
            description="The chance that a random input matches any segment of the neuron."
        ),
    ]
    false_miss_by_noise: Annotated[
        list[FalseMissAtNoise],
        Field(
            description="The chance of missing a stored pattern at 10%, 20% and 30% noise.",
            max_length=3,
            min_length=3,
        ),
    ]
    patterns_before_new_segment: Annotated[
        Optional[int],
        Field(
            description="How many more patterns the newest segment takes before a new segment opens; null when unlimited.",
            ge=0,
        ),
    ]


class Query1(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    active: Annotated[
        list[ActiveItem],
        Field(
            description="The input's active bits, in any order. Rejected with 422 when empty, when an index is\nnegative or not below input_size, or when an index repeats. An input with fewer active\nbits than the threshold is answered with no matches and a `note`.\n",
            max_length=16384,
            min_length=1,
        ),
    ]
    record: Annotated[
        Optional[dict[str, Any]],
        Field(
            description="Field values for the space's encoder, in place of `active` (give exactly one of the\ntwo): the record's code is the input, and each match then says which fields it came\nfrom. Rejected with 422 (field `record`) when the space has no encoder, when a field\nis unknown, has the wrong type or a value the field cannot encode (the detail names\nit), or when both or neither of `active` and `record` are given.\n"
        ),
    ] = None
    threshold: Annotated[
        Optional[int],
        Field(description="The threshold to use instead of the space's.", ge=1),
    ] = None
    limit: Annotated[
        Optional[int], Field(description="The most matches to return.", ge=1, le=1000)
    ] = 10


class Query2(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    active: Annotated[
        Optional[list[ActiveItem]],
        Field(
            description="The input's active bits, in any order. Rejected with 422 when empty, when an index is\nnegative or not below input_size, or when an index repeats. An input with fewer active\nbits than the threshold is answered with no matches and a `note`.\n",
            max_length=16384,
            min_length=1,
        ),
    ] = None
    record: Annotated[
        dict[str, Any],
        Field(
            description="Field values for the space's encoder, in place of `active` (give exactly one of the\ntwo): the record's code is the input, and each match then says which fields it came\nfrom. Rejected with 422 (field `record`) when the space has no encoder, when a field\nis unknown, has the wrong type or a value the field cannot encode (the detail names\nit), or when both or neither of `active` and `record` are given.\n"
        ),
    ]
    threshold: Annotated[
        Optional[int],
        Field(description="The threshold to use instead of the space's.", ge=1),
    ] = None
    limit: Annotated[
        Optional[int], Field(description="The most matches to return.", ge=1, le=1000)
    ] = 10


class QueryBatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    queries: Annotated[
        list[Union[Query1, Query2]], Field(max_length=1000, min_length=1)
    ]


FieldsAdditionalProperty = TypeAliasType(
    "FieldsAdditionalProperty", Annotated[int, Field(ge=0)]
)


class Match(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    neuron: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    segment: Annotated[
        int, Field(description="The matching segment's number within the neuron.", ge=0)
    ]
    overlap: Annotated[
        int,
        Field(description="The segment's synapses that are active in the input.", ge=1),
    ]
    pattern: Annotated[
        str,
        Field(
            description="The id of the stored pattern on this segment whose own synapses overlap the input most (the earliest stored among equals), telling which of the patterns learned together the input resembles.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    pattern_overlap: Annotated[
        int,
        Field(
            description="That pattern's own synapses that are active in the input.",
            ge=0,
        ),
    ]
    pattern_metadata: Annotated[
        Optional[dict[str, Any]],
        Field(
            description="The metadata stored with that pattern; absent when it has none."
        ),
    ] = None
    fields: Annotated[
        Optional[dict[str, FieldsAdditionalProperty]],
        Field(
            description="For a query posted as a record: per field of the space's encoder, how many of the\noverlapping synapses lie on that field's bits (they sum to `overlap`), so a match\nsays why it matched. Absent for a query posted as bits.\n"
        ),
    ] = None
    p_value: Annotated[
        Probability,
        Field(
            description="The chance that a random input with as many active bits reaches at least this overlap on this segment."
        ),
    ]
    neuron_false_match: Annotated[
        Probability,
        Field(
            description="The chance that a random input with as many active bits matches any segment of this neuron at the threshold used."
        ),
    ]


class Recognition(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    matches: Annotated[
        list[Match],
        Field(
            description="Matching segments, sorted by p_value ascending, then neuron name; at most `limit`."
        ),
    ]
    expected_false_matches: Annotated[
        ExpectedCount,
        Field(
            description="The expected number of neurons of the space that a random input with as many active bits would falsely match at the threshold used."
        ),
    ]
    segments_overlapped: Annotated[
        int,
        Field(
            description="Segments the input overlapped (had at least one active synapse on).",
            ge=0,
        ),
    ]
    threshold: Annotated[int, Field(description="The threshold used.", ge=1)]
    note: Annotated[
        Optional[str],
        Field(
            description="Present only when the answer needs explaining, for example when the input has fewer active bits than the threshold and so cannot match."
        ),
    ] = None


class QueryBatchResponse(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    results: Annotated[
        list[Recognition],
        Field(description="One recognition per query, in the order of the request."),
    ]


class Stats(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    version: Annotated[str, Field(description="The running build's version.")]
    kernel: Annotated[
        Literal["portable", "avx2", "avx512"],
        Field(
            description="The counting kernel dense spaces recognise with, the fastest this CPU supports (`portable`, `avx2` or `avx512`), chosen at start-up."
        ),
    ]
    mean_patterns_per_segment: Annotated[
        float,
        Field(
            description="Patterns per segment over every space; 0 without segments.",
            ge=0.0,
        ),
    ]
    max_patterns_per_segment: Annotated[
        int, Field(description="The most patterns any segment holds.", ge=0)
    ]
    segments_at_capacity: Annotated[
        int,
        Field(
            description="Segments that would most likely not take one more random pattern (the next store on their neuron opens a new segment).",
            ge=0,
        ),
    ]
    writer_queue_depth: Annotated[
        int, Field(description="Write commands waiting for the writer.", ge=0)
    ]
    database_bytes: Annotated[
        Optional[int],
        Field(
            description="The SQLite database file and its write-ahead log on disk, or PostgreSQL's size of the database; null for an in-memory database.",
            ge=0,
        ),
    ]
    backend: Annotated[
        Literal["sqlite", "postgres"],
        Field(description="The database the service runs on."),
    ]
    applied_sequence: Annotated[
        int,
        Field(
            description="The last change (write) this replica applied to its engine; a read here sees every write up to it.",
            ge=0,
        ),
    ]
    head_sequence: Annotated[
        int,
        Field(
            description="The newest change this replica knows the database holds.", ge=0
        ),
    ]
    replication_lag: Annotated[
        int,
        Field(
            description="head_sequence - applied_sequence, the changes committed that this replica has not applied yet (0 on SQLite).",
            ge=0,
        ),
    ]
    queries: Annotated[
        int,
        Field(
            description="Queries answered since start (each query of a batch counts).",
            ge=0,
        ),
    ]
    matches: Annotated[int, Field(description="Matches those answers returned.", ge=0)]
    stores: Annotated[
        int,
        Field(
            description="Patterns stored, or found already stored, by answered store requests since start.",
            ge=0,
        ),
    ]
    errors_by_status: Annotated[
        dict[str, ErrorsByStatusAdditionalProperty],
        Field(description="Answers with a 4xx or 5xx status since start, by status."),
    ]
    query_latency: LatencyWindow
    store_latency: LatencyWindow
    by_space: Annotated[
        list[SpaceStats], Field(description="Each space's part, by name.")
    ]
    spaces: Annotated[int, Field(ge=0)]
    neurons: Annotated[int, Field(ge=0)]
    segments: Annotated[int, Field(ge=0)]
    patterns: Annotated[int, Field(ge=0)]
    synapses: Annotated[int, Field(ge=0)]
    memory_bytes: Annotated[
        int,
        Field(
            description="The memory the engine takes, by its own estimate (what `--memory-limit` is checked against).",
            ge=0,
        ),
    ]
    memory_limit: Annotated[
        Optional[int],
        Field(
            description="The engine's memory limit in bytes; null when none is set.",
            ge=0,
        ),
    ]
    resident_bytes: Annotated[
        Optional[int],
        Field(
            description="This process's resident memory (RSS) as the operating system counts it; null where it\ndoes not say. The engine's part (which `memory_bytes` estimates), the process's own\n(13 to 25 MB) and what the allocator keeps of memory freed lately.\n",
            ge=0,
        ),
    ]
    commits: Annotated[
        int,
        Field(description="Database write transactions committed since start.", ge=0),
    ]
    writes_committed: Annotated[
        int, Field(description="Individual writes carried by those transactions.", ge=0)
    ]
    writes_per_commit: Annotated[
        float,
        Field(
            description="writes_committed / commits (0 before the first commit); above 1 when group commit batches concurrent writes.",
            ge=0.0,
        ),
    ]
    uptime_seconds: Annotated[
        float, Field(description="Seconds since the process started.", ge=0.0)
    ]


class EncoderField(BaseModel):
    """
    One field, by `type`:
    - `number`: a random distributed scalar code. A value falls in bucket
      floor(x / resolution), and values k buckets apart share active_bits - k bits. Give
      `resolution` or `radius` (active_bits resolutions); `period` makes it cyclic (angles,
      hours), split into round(period / resolution) buckets. NaN-like, infinite or
      out-of-range values are refused.
    - `category`: a string, integer or boolean; equal values share every bit, different ones
      only by chance (active_bits^2 / input_size on average). Unknown values need nothing.
    - `time`: an RFC 3339 timestamp (without an offset it is a wall-clock time in
      `timezone`), read in the IANA `timezone` (never the server's), as the components
      given: `time_of_day` (minutes, cyclic over 1440; default radius 240), `hour_of_week`
      (hours, cyclic over 168, so there is no jump at midnight; default radius 12), `weekend`
      (a flag: active_bits only) and `day_of_year` (days, cyclic over 366; default radius 30).
      Its active_bits is the sum of its components'.
    - `vector`: an array of `dimensions` numbers (an embedding), optionally centred by
      `mean`: the strongest outputs of a seeded sparse sign projection (each output sums 32
      inputs). Vectors with cosine rho share about active_bits * Phi2(t, t; rho) / p bits
      (p = active_bits / input_size, t = Phi^-1(1 - p)); unrelated ones share what random
      codes do. Needs input_size at most 65536.
    - `text`: lower-cased Unicode words, each a seeded near-Gaussian vector; a text's code is
      the strongest outputs of their sum, so texts sharing words share bits. Needs
      input_size at most 65536; a record's texts may hold at most 2^22 / input_size distinct words in all.

    """

    model_config = ConfigDict(
        extra="ignore",
    )
    type: Literal["number", "category", "time", "vector", "text"]
    active_bits: Annotated[Optional[int], Field(ge=1)] = None
    resolution: Annotated[Optional[float], Field(gt=0.0)] = None
    radius: Annotated[Optional[float], Field(gt=0.0)] = None
    period: Annotated[Optional[float], Field(gt=0.0)] = None
    timezone: Annotated[Optional[str], Field(examples=["Europe/Berlin"])] = None
    time_of_day: Optional[TimeComponent] = None
    hour_of_week: Optional[TimeComponent] = None
    weekend: Optional[TimeComponent] = None
    day_of_year: Optional[TimeComponent] = None
    dimensions: Annotated[Optional[int], Field(ge=1, le=65536)] = None
    mean: Optional[list[float]] = None


class EncoderMeaning(BaseModel):
    """
    What the space's threshold means in each field's own units. Changing one field of a
    stored record by k buckets replaces k of its bits, which is the theory's noise: the
    theory's miss probability for k noise bits is the chance the changed record goes
    unrecognised.

    """

    model_config = ConfigDict(
        extra="ignore",
    )
    fields: dict[str, FieldMeaning]


class EncoderSpec(BaseModel):
    """
    Turns records into codes: named fields, each with a type and its share of the active
    bits (`active_bits`; the shares sum to the space's active_bits). A field's code depends
    only on the space's seed, the field's name and its value. Fields take bits in name order
    and never share one, so a full record has exactly active_bits distinct bits. Immutable,
    like every parameter.

    """

    model_config = ConfigDict(
        extra="ignore",
    )
    fields: Annotated[
        dict[str, EncoderField],
        Field(
            description="Field specs by name (a name as for spaces; dots address nested objects).",
            max_length=64,
            min_length=1,
        ),
    ]


class SpaceParametersRequest(BaseModel):
    """
    The parameters of a new space; omitted optional fields take their defaults.
    """

    model_config = ConfigDict(
        extra="ignore",
    )
    input_size: Annotated[
        int,
        Field(description="Bits in every code of the space (n).", ge=1, le=16777216),
    ]
    active_bits: Annotated[
        Optional[int],
        Field(
            description="The typical number of active bits of a code (a); at most input_size and at most 16384.\nRequired, unless the space has an encoder: then it is the sum of the fields'\nactive_bits (and, when given, must equal it).\n",
            ge=1,
            le=16384,
        ),
    ] = None
    synapses_per_pattern: Annotated[
        Optional[int],
        Field(
            description="Synapses sampled from each stored pattern (s); at most input_size and at most 1024.\nDefaults to min(active_bits, 24). With these bounds creating a space computes its\ntheory in tens of milliseconds whatever the parameters.\n",
            ge=1,
            le=1024,
        ),
    ] = None
    threshold: Annotated[
        Optional[int],
        Field(
            description="Active synapses a segment needs to match (theta); at most synapses_per_pattern. Defaults\nto the theory's threshold that minimises false match plus false miss at 20% noise.\n",
            ge=1,
        ),
    ] = None
    max_false_match: Annotated[
        Optional[float],
        Field(
            description="The highest union false-match probability a segment may reach before a new segment is opened.",
            gt=0.0,
            le=1.0,
        ),
    ] = 1e-06
    max_segments_per_neuron: Annotated[
        Optional[int],
        Field(description="The most segments one neuron may grow.", ge=1, le=65536),
    ] = 1024
    seed: Annotated[
        Optional[int],
        Field(
            description="Seeds the sampling of synapses and the encoder's hashes, so that the same requests give the same synapses and codes.",
            ge=0,
            le=9223372036854775807,
        ),
    ] = 0
    encoder: Optional[EncoderSpec] = None


class SpaceParameters(BaseModel):
    """
    A space's parameters with every default filled in.
    """

    model_config = ConfigDict(
        extra="ignore",
    )
    input_size: Annotated[int, Field(ge=1, le=16777216)]
    active_bits: Annotated[int, Field(ge=1)]
    synapses_per_pattern: Annotated[int, Field(ge=1)]
    threshold: Annotated[int, Field(ge=1)]
    max_false_match: Annotated[float, Field(gt=0.0, le=1.0)]
    max_segments_per_neuron: Annotated[int, Field(ge=1, le=65536)]
    seed: Annotated[int, Field(ge=0, le=9223372036854775807)]
    encoder: Annotated[
        Optional[EncoderSpec],
        Field(
            description="The space's encoder as stored, every default filled in (a radius becomes its resolution); absent for a space without one."
        ),
    ] = None


class SpaceReport(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    name: Annotated[
        str,
        Field(
            description="The name of a space or neuron, or the id of a pattern.",
            examples=["sensors", "door-sensor-3", "v2:open.morning_1"],
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
    parameters: SpaceParameters
    counts: SpaceCounts
    theory: SpaceTheory
    encoder: Optional[EncoderMeaning] = None


class SpaceList(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
    )
    spaces: Annotated[
        list[SpaceReport], Field(description="A page of spaces, sorted by name.")
    ]
    next: Annotated[
        Optional[str],
        Field(
            description="Pass as `after` for the next page; null on the last one.",
            max_length=128,
            min_length=1,
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
        ),
    ]
