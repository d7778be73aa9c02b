"""Runs the Dockerfile's build stage with the local toolchain, in a scratch copy, as `docker build`
would: the check that the image builds, where no Docker engine or base image is available.

Why: hadolint reads the Dockerfile but never runs it, so a step that cannot work (a placeholder
the manifest needs and the build stage does not make) passed every check while `docker build`
stopped at its first RUN. Here each instruction of the first stage is carried out for real:

  FROM       starts the stage (the toolchain is this machine's instead of the image's);
  WORKDIR    the directory later instructions run in (made if missing);
  ENV        set for later RUNs;
  COPY SRC.. DST  copies from the build context, which is the repository's files (tracked, or
             untracked and not ignored by git) less what .dockerignore excludes, as Docker reads
             it (`*` within one path segment, `**` across segments, `!` to re-include);
  RUN        runs the command with `sh -c`.

The stage's file system is a folder ROOT in a scratch directory: absolute paths in the stage
(WORKDIR, COPY destinations, and the absolute paths a RUN names under /usr/local) live under it.
Any other instruction in the stage stops the check, naming it, so the Dockerfile cannot drift
away from what is checked here. Then every `COPY --from=STAGE SRC` of the final stage must find
SRC under ROOT, and the binary copied must run (`dendrite theory ...` answers JSON).

cargo builds into a target directory linked at the stage's target/: by default the repository's
own target/ ($DENDRITE_DOCKER_TARGET_DIR names another), so that the dependencies `cargo build
--release` compiled already are reused, as a warm Docker layer cache would reuse them (a cold one
would compile them again: about four minutes more here, for no more checking). The stage's
placeholder build and its real build both really run, and leave target/release/dendrite built
from the same sources as before. On failure the scratch directory is kept and named.

Run (from the repository root):
    target/test-venv/bin/python -m pytest tools/scenarios/test_docker_build.py -s
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile

from tools.harness import ROOT

DOCKERFILE = os.path.join(ROOT, "Dockerfile")


def instructions(dockerfile):
    """(keyword, arguments) of each instruction, continuation lines joined, comments dropped."""
    logical, current = [], ""
    with open(dockerfile, encoding="utf-8") as lines:
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#") or (not current and not stripped):
                continue
            if stripped.endswith("\\"):
                current += stripped[:-1] + " "
                continue
            logical.append(current + stripped)
            current = ""
    for text in logical:
        keyword, _, rest = text.partition(" ")
        yield keyword.upper(), rest.strip()


def pattern_regex(pattern):
    """A .dockerignore pattern as a regular expression over slash-separated relative paths."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex + "$")


def ignore_patterns(context):
    """.dockerignore's patterns as (regex, excludes) pairs, in order."""
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return []
    patterns = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append((pattern_regex(line.lstrip("!").strip("/")), not line.startswith("!")))
    return patterns


def ignored(relative, patterns):
    """Whether .dockerignore leaves `relative` out: the last pattern matching it or one of the
    folders it is in decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    verdict = False
    for regex, excludes in patterns:
        if any(regex.match(prefix) for prefix in prefixes):
            verdict = excludes
    return verdict


def context_files(context):
    """The build context's files: the repository's, as a clean clone (plus new files) has them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=context,
        capture_output=True,
        check=True,
    ).stdout.decode()
    patterns = ignore_patterns(context)
    return [
        f for f in listed.split("\0") if f and os.path.isfile(os.path.join(context, f)) and not ignored(f, patterns)
    ]


def inside(root, path, cwd):
    """A stage path (absolute, or relative to the working directory) as a path under `root`."""
    return os.path.join(root, path.lstrip("/")) if path.startswith("/") else os.path.join(cwd, path)


def copy(context, files, sources, destination, root, cwd):
    """COPY SOURCES.. DESTINATION from the build context into the stage."""
    target = inside(root, destination, cwd)
    many = len(sources) > 1 or destination.endswith("/") or sources == ["."]
    for source in sources:
        source = os.path.normpath(source)
        chosen = files if source == "." else [f for f in files if f == source or f.startswith(source + "/")]
        if not chosen:
            raise RuntimeError(f"COPY {source}: not in the build context (missing, or left out by .dockerignore)")
        for name in chosen:
            relative = name if source == "." else os.path.relpath(name, os.path.dirname(source) or ".")
            out = target if (source != "." and name == source and not many) else os.path.join(target, relative)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            shutil.copy2(os.path.join(context, name), out)


def stages_of(dockerfile):
    """[(stage name or None, [(keyword, arguments)])], one per FROM."""
    stages = []
    for keyword, rest in instructions(dockerfile):
        if keyword == "FROM":
            words = rest.split()
            stages.append((words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else None, []))
        elif stages:
            stages[-1][1].append((keyword, rest))
    return stages


class Stage:
    """The build stage being carried out: its root folder, working directory and environment."""

    def __init__(self, root, target_dir):
        self.root, self.cwd, self.target_dir = root, root, target_dir
        self.env = dict(os.environ)
        self.files = context_files(ROOT)

    def workdir(self, rest):
        self.cwd = inside(self.root, rest, self.cwd)
        os.makedirs(self.cwd, exist_ok=True)
        target = os.path.join(self.cwd, "target")
        if not os.path.exists(target):
            os.makedirs(self.target_dir, exist_ok=True)
            os.symlink(self.target_dir, target)

    def set_env(self, rest):
        for assignment in shlex.split(rest):
            name, _, value = assignment.partition("=")
            self.env[name] = value

    def copy(self, rest):
        words = shlex.split(rest)
        if any(w.startswith("--") for w in words):
            raise RuntimeError(f"COPY {rest}: flags are not handled in the build stage")
        copy(ROOT, self.files, words[:-1], words[-1], self.root, self.cwd)
        print(f"COPY {rest}")

    def run(self, rest):
        command = re.sub(r"(?<![\w.])/usr/local/", self.root + "/usr/local/", rest)
        os.makedirs(os.path.join(self.root, "usr/local/bin"), exist_ok=True)
        print(f"RUN {rest}", flush=True)
        done = subprocess.run(["sh", "-c", command], cwd=self.cwd, env=self.env)
        if done.returncode != 0:
            raise RuntimeError(f"RUN {rest}: exit status {done.returncode}")

    def carry_out(self, steps):
        actions = {"WORKDIR": self.workdir, "ENV": self.set_env, "COPY": self.copy, "RUN": self.run}
        for keyword, rest in steps:
            if keyword not in actions:
                raise RuntimeError(f"{keyword} {rest}: an instruction this check does not carry out")
            actions[keyword](rest)


def check_final_copies(stage, build_name, final_steps):
    """Every `COPY --from=BUILD SRC` of the final stage finds SRC, and the binary runs."""
    for keyword, rest in final_steps:
        words = rest.split()
        if keyword != "COPY" or not words or words[0] != f"--from={build_name}":
            continue
        built = inside(stage.root, words[1], stage.cwd)
        if not os.path.isfile(built):
            raise RuntimeError(f"COPY {rest}: the build stage made no {words[1]}")
        answer = subprocess.run(
            [built, "theory", "--n", "2048", "--a", "40", "--s", "24", "--theta", "12"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if answer.returncode != 0 or "segment_false_match" not in json.loads(answer.stdout or "{}"):
            raise RuntimeError(f"{words[1]} does not run: {answer.returncode} {answer.stderr[:300]}")
        print(f"the final stage's {words[1]} is built and runs")


def test_build_stage_builds_and_its_output_runs():
    stages = stages_of(DOCKERFILE)
    assert len(stages) >= 2, "docker build check: expected a build stage and a final stage"
    scratch = tempfile.mkdtemp(prefix="dendrite-docker-check-")
    root = os.path.join(scratch, "root")
    os.makedirs(root)
    target_dir = os.environ.get("DENDRITE_DOCKER_TARGET_DIR") or os.path.join(ROOT, "target")
    stage = Stage(root, target_dir)
    build_name, build_steps = stages[0]
    try:
        stage.carry_out(build_steps)
        check_final_copies(stage, build_name, stages[-1][1])
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as error:
        raise AssertionError(f"docker build check FAILED: {error} (scratch kept in {scratch})") from error
    shutil.rmtree(scratch, ignore_errors=True)
    print("docker build check: the build stage ran and its output runs")
