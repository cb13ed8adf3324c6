"""`pyswarm image build`: Dockerfile builds with a layer cache, docker's classic builder.

Modules: `dockerfile` parses (pure), `words` substitutes variables (pure), `plan`
checks every instruction and groups stages before anything is built, `builder` runs
the steps, `instructions` applies metadata instructions to the config, `run_step`
runs RUN in a real container, `copy_step`/`context`/`layers` make COPY/ADD and RUN
layers, `commit` stores each step's image, `cache` remembers steps.

Design of the cache and of intermediate images (the rules the image commands follow):

- Every step makes a complete, untagged image in the store (config, manifest,
  layers), so RUN starts a container from it and a later build can reuse it.
- The cache (`<image store>/build-cache.json`) maps a step key (parent image id +
  the instruction after substitution + for COPY/ADD the digest of the sources'
  names, types, modes and contents + for RUN the build args it sees) to the step's
  image, and records each step image's parent. A hit needs the image to exist still.
- `image ls` hides an untagged image that some existing image was built on (it has
  a child in the parent links), as docker hides intermediate images; `image
  history` uses the same links to show each step's image id.
- `image prune` keeps every image that an image it keeps (tagged ones, and those
  containers use; with `-a` only the latter) was built on, so a plain prune never
  breaks the cache of a tagged build; once the final image goes, its chain becomes
  dangling and the next prune removes it. Images of builds in progress are kept too.
"""

from pyswarm.images.build.builder import Builder, BuildOptions
from pyswarm.images.build.cache import BuildCache
from pyswarm.images.build.errors import BuildError, StepFailed

__all__ = ["BuildCache", "BuildError", "BuildOptions", "Builder", "StepFailed"]
