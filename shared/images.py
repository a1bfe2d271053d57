"""Container image references, as the Docker reference grammar splits them.

`ImageRef.parse` names the registry, repository, tag and digest of `[registry/]repository
[:tag][@digest]`; `tracking_key` is what an ACR `ImagePushed` event and an `auto_deploy`
container server share (`registry/repository:tag`), stored on the server document so a
push finds its servers through an index (`shared.servers`, `triggers.event_grid`).
Grammar: https://github.com/distribution/reference/blob/main/reference.go
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference `[registry/]repository[:tag][@digest]`."""

    registry: str
    repository: str
    tag: str
    digest: str | None

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        """Split `image` as the Docker reference grammar does; Docker Hub when no registry is named."""
        name, _, digest = image.partition("@")
        first, _, rest = name.partition("/")
        # the first component is a registry only if it looks like a host (Docker's rule)
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = "docker.io", name
        repository, _, tag = path.rpartition(":") if ":" in path else (path, "", "latest")
        return cls(registry.lower(), repository, tag or "latest", digest or None)

    @property
    def key(self) -> str:
        """`registry/repository:tag`: the repository and tag a push of a new build names."""
        return tracking_key(self.registry, self.repository, self.tag)


def tracking_key(registry: str, repository: str, tag: str) -> str:
    """`registry/repository:tag` with the registry host lowercased (hosts are case-insensitive)."""
    return f"{registry.lower()}/{repository}:{tag}"
