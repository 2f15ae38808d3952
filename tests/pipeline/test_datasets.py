import pytest

from genreflow.pipeline.datasets import detect_dataset, scan_catalogue
from genreflow.pipeline.errors import CatalogueError
from tests.conftest import tone


def test_gtzan_with_fault_filtered_splits(tmp_path, write_audio):
    for genre in ("blues", "jazz"):
        for i in range(2):
            write_audio(f"genres/{genre}/{genre}.{i:05d}.wav", tone(1))
    (tmp_path / "train_filtered.txt").write_text("blues/blues.00000.wav\njazz/jazz.00000.wav\n")
    (tmp_path / "valid_filtered.txt").write_text("blues/blues.00001.wav\n")
    (tmp_path / "test_filtered.txt").write_text("\n")
    assert detect_dataset(str(tmp_path)) == "gtzan"
    frame = scan_catalogue(str(tmp_path)).set_index("track_id")
    assert list(frame.index) == ["gtzan:blues.00000", "gtzan:blues.00001", "gtzan:jazz.00000", "gtzan:jazz.00001"]
    assert frame.loc["gtzan:blues.00001", "split"] == "valid"
    assert frame.loc["gtzan:jazz.00000", "label"] == "jazz"
    assert frame["split"].isna().sum() == 1  # left out by the filtered lists


def test_gtzan_bad_split_line_names_file_and_line(tmp_path, write_audio):
    write_audio("genres/rock/rock.00000.wav", tone(1))
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}_filtered.txt").write_text("rock/rock.00000.wav\n" if split == "train" else "rock.wav\n")
    with pytest.raises(CatalogueError, match=r"valid_filtered.txt, line 1"):
        scan_catalogue(str(tmp_path), dataset="gtzan")


FMA_CSV = """,set,set,track,track
,split,subset,genre_top,title
track_id,,,,
2,training,small,Hip-Hop,a
5,test,small,Pop,b
140,validation,medium,Folk,c
"""


def test_fma_reads_two_header_rows_and_nests_subsets(tmp_path, write_audio):
    (tmp_path / "fma_metadata").mkdir()
    (tmp_path / "fma_metadata/tracks.csv").write_text(FMA_CSV)
    write_audio("fma_medium/000/000002.mp3", tone(1))
    write_audio("fma_medium/000/000005.mp3", tone(1))
    write_audio("fma_medium/000/000140.mp3", tone(1))
    assert detect_dataset(str(tmp_path)) == "fma"
    frame = scan_catalogue(str(tmp_path), dataset="fma", fma_subset="medium").set_index("track_id")
    assert frame.loc["fma:000002", ["label", "split"]].tolist() == ["Hip-Hop", "train"]
    assert frame.loc["fma:000140", "split"] == "valid"


def test_fma_missing_columns_are_named(tmp_path):
    (tmp_path / "fma_metadata").mkdir()
    (tmp_path / "fma_metadata/tracks.csv").write_text(",track\n,title\ntrack_id,\n2,a\n")
    with pytest.raises(CatalogueError, match=r"track.genre_top"):
        scan_catalogue(str(tmp_path), dataset="fma")


def test_us8k_takes_class_and_fold_and_checks_folders(tmp_path, write_audio):
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata/UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "100032-3-0-0.wav,100032,0,0.3,1,5,3,dog_bark\n"
        "7061-6-0-0.wav,7061,0,2,1,1,6,gun_shot\n"
    )
    write_audio("audio/fold5/100032-3-0-0.wav", tone(1))
    write_audio("audio/fold1/7061-6-0-0.wav", tone(1))
    frame = scan_catalogue(str(tmp_path)).set_index("track_id")
    assert frame.loc["us8k:100032-3-0-0", ["label", "fold"]].tolist() == ["dog_bark", 5]
    write_audio("audio/fold2/7061-6-0-0.wav", tone(1))
    with pytest.raises(CatalogueError, match="fold1, not fold2"):
        scan_catalogue(str(tmp_path), dataset="us8k")


def test_folder_per_label_and_unlabelled(tmp_path, write_audio):
    write_audio("lib/rock/one.wav", tone(1))
    write_audio("lib/jazz/two song.flac", tone(1))
    (tmp_path / "lib/jazz/notes.txt").write_text("ignored")
    assert detect_dataset(str(tmp_path / "lib")) == "folder"
    frame = scan_catalogue(str(tmp_path / "lib"))
    assert sorted(frame["label"]) == ["jazz", "rock"] and frame["track_id"].isna().all()
    write_audio("lib/loose.mp3", tone(1))
    assert detect_dataset(str(tmp_path / "lib")) == "unlabelled"
    with pytest.raises(CatalogueError, match="use --dataset unlabelled"):
        scan_catalogue(str(tmp_path / "lib"), dataset="folder")
    assert scan_catalogue(str(tmp_path / "lib"))["label"].isna().all()


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogueError, match="no such folder"):
        scan_catalogue(str(tmp_path / "nowhere"), dataset="unlabelled")
    with pytest.raises(CatalogueError, match="UrbanSound8K needs"):
        scan_catalogue(str(tmp_path), dataset="us8k")
