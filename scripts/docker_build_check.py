#!/usr/bin/env python3
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

cargo builds into --target-dir, linked at the stage's target/: by default the repository's own
target/, so that the dependencies `cargo build --release` compiled already are reused, as a warm
Docker layer cache would reuse them (a cold one would compile them again: about four minutes
more here, for no more checking). The stage's placeholder build and its real build both really
run, and leave target/release/dendrite built from the same sources as before. Exit status 0 when
the stage builds and its output runs; 1 otherwise.

Run from anywhere:
    python3 scripts/docker_build_check.py
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def instructions(dockerfile):
    """(keyword, arguments) of each instruction, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in open(dockerfile, encoding="utf-8"):
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        logical.append(current)
        current = ""
    for text in logical:
        keyword, _, rest = text.partition(" ")
        yield keyword.upper(), rest.strip()


def ignore_patterns(context):
    """.dockerignore's patterns as (regex, excludes) pairs, in order."""
    path = os.path.join(context, ".dockerignore")
    patterns = []
    if not os.path.exists(path):
        return patterns
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((re.compile(regex + "$"), excludes))
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
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=context, capture_output=True, check=True).stdout.decode()
    patterns = ignore_patterns(context)
    return [f for f in listed.split("\0") if f and os.path.isfile(os.path.join(context, f))
            and not ignored(f, patterns)]


def inside(root, path, cwd):
    """A stage path (absolute, or relative to the working directory) as a path under `root`."""
    return os.path.join(root, path.lstrip("/")) if path.startswith("/") else os.path.join(cwd, path)


def copy(context, files, sources, destination, root, cwd):
    target = inside(root, destination, cwd)
    many = len(sources) > 1 or destination.endswith("/") or sources == ["."]
    for source in sources:
        source = os.path.normpath(source)
        if source == ".":
            chosen = files
        else:
            chosen = [f for f in files if f == source or f.startswith(source + "/")]
        if not chosen:
            raise RuntimeError(f"COPY {source}: not in the build context (missing, or left out by .dockerignore)")
        for name in chosen:
            relative = name if source == "." else os.path.relpath(name, os.path.dirname(source) or ".")
            if source != "." and name == source and not many:
                out = target
            else:
                out = os.path.join(target, relative)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            shutil.copy2(os.path.join(context, name), out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dockerfile", default=os.path.join(ROOT, "Dockerfile"))
    parser.add_argument("--target-dir", default=os.path.join(ROOT, "target"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    options = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="dendrite-docker-check-")
    root = os.path.join(scratch, "root")
    os.makedirs(root)
    files = context_files(ROOT)
    env = dict(os.environ)
    stages = []  # (name, [(keyword, arguments)])
    for keyword, rest in instructions(options.dockerfile):
        if keyword == "FROM":
            words = rest.split()
            stages.append((words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else None, []))
        elif stages:
            stages[-1][1].append((keyword, rest))
    if len(stages) < 2:
        print("docker build check: expected a build stage and a final stage")
        return 1
    build_name, build_steps = stages[0]
    cwd = root
    ok = True
    try:
        for keyword, rest in build_steps:
            if keyword == "WORKDIR":
                cwd = inside(root, rest, cwd)
                os.makedirs(cwd, exist_ok=True)
                target = os.path.join(cwd, "target")
                if not os.path.exists(target):
                    os.makedirs(options.target_dir, exist_ok=True)
                    os.symlink(options.target_dir, target)
            elif keyword == "ENV":
                for assignment in shlex.split(rest):
                    name, _, value = assignment.partition("=")
                    env[name] = value
            elif keyword == "COPY":
                words = shlex.split(rest)
                if any(w.startswith("--") for w in words):
                    raise RuntimeError(f"COPY {rest}: flags are not handled in the build stage")
                copy(ROOT, files, words[:-1], words[-1], root, cwd)
                print(f"COPY {rest}")
            elif keyword == "RUN":
                command = re.sub(r"(?<![\w.])/usr/local/", root + "/usr/local/", rest)
                os.makedirs(os.path.join(root, "usr/local/bin"), exist_ok=True)
                print(f"RUN {rest}", flush=True)
                done = subprocess.run(["sh", "-c", command], cwd=cwd, env=env)
                if done.returncode != 0:
                    raise RuntimeError(f"RUN {rest}: exit status {done.returncode}")
            else:
                raise RuntimeError(f"{keyword} {rest}: an instruction this check does not carry out")
        for keyword, rest in stages[-1][1]:
            words = rest.split()
            if keyword == "COPY" and words and words[0] == f"--from={build_name}":
                built = inside(root, words[1], cwd)
                if not os.path.isfile(built):
                    raise RuntimeError(f"COPY {rest}: the build stage made no {words[1]}")
                answer = subprocess.run([built, "theory", "--n", "2048", "--a", "40", "--s", "24", "--theta", "12"],
                                        capture_output=True, text=True, timeout=60)
                if answer.returncode != 0 or "segment_false_match" not in json.loads(answer.stdout or "{}"):
                    raise RuntimeError(f"{words[1]} does not run: {answer.returncode} {answer.stderr[:300]}")
                print(f"the final stage's {words[1]} is built and runs")
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as error:
        print(f"docker build check FAILED: {error}")
        ok = False
    finally:
        if options.keep:
            print(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    if ok:
        print("docker build check: the build stage ran and its output runs")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
