"""Copy the project's data from a `shared/data` folder into `data/`, gzip-compressed, with a sha256 manifest.

Deterministic: gzip with mtime 0, so re-running on the same sources writes byte-identical files.
Usage: python scripts/bundle_data.py ../shared/data data
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
import sys
from pathlib import Path

# What the project uses, relative to the source folder. Of MovieLens only the movie genres and their IMDb links (the
# catalogue's genre facts); its licence (README.txt, bundled with them) forbids commercial use.
FILES = [
    "redial/test.jsonl.gz",
    "redial/train_complete.jsonl.gz",
    "redial/train_partial.jsonl.gz",
    "redial/train_noid.jsonl.gz",
    "redial/movies_with_mentions.csv",
    "kg/dbpedia_subkg.json",
    "kg/entity2id.json",
    "kg/relation2id.json",
    "kg/relation_set.json",
    "kg/item_ids.json",
    "kg/redial_movie_to_dbpedia.json",
    "kg/redial_movie_info.json",
    "emotion/redial_emotion_train.jsonl",
    "emotion/ANNOTATION_GUIDE.md",
    "emotion/goemotions/train.tsv",
    "emotion/goemotions/dev.tsv",
    "emotion/goemotions/test.tsv",
    "emotion/goemotions/labels.txt",
    "emotion/lexicons/vader_lexicon.txt",
    "inspired/train_data_dbpedia.jsonl",
    "inspired/valid_data_dbpedia.jsonl",
    "inspired/test_data_dbpedia.jsonl",
    "inspired/dbpedia_subkg.json",
    "inspired/entity2id.json",
    "inspired/relation2id.json",
    "inspired/item_ids.json",
    "reviews/aclImdb_labeled.jsonl.gz",
    "reviews/aclImdb_README.txt",
    "movielens/movies.csv",
    "movielens/links.csv",
    "movielens/README.txt",
]
UNCOMPRESSED = {".md", ".txt"}  # small prose files stay readable


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(src: Path, dst: Path) -> None:
    rows = []
    for rel in FILES:
        source = src / rel
        if rel.endswith(".gz") or Path(rel).suffix in UNCOMPRESSED and not rel.endswith("vader_lexicon.txt"):
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        else:
            target = dst / (rel + ".gz")
            target.parent.mkdir(parents=True, exist_ok=True)
            with source.open("rb") as fin, target.open("wb") as raw:
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as fout:
                    shutil.copyfileobj(fin, fout)
        rows.append((str(target.relative_to(dst)), target.stat().st_size, sha256(target), rel, sha256(source)))
    with (dst / "MANIFEST.tsv").open("w") as f:
        f.write("path\tbytes\tsha256\tsource\tsource_sha256\n")
        for row in rows:
            f.write("\t".join(map(str, row)) + "\n")
    print(f"bundled {len(rows)} files into {dst}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
