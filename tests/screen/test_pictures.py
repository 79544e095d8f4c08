"""Product pictures on the packer's screen come from the station itself (the kiosk may have no
network): a file the catalog's image_url names, or <SKU>.<ext> in [catalog] pictures_dir, served
at /screen/picture. A remote image_url goes to the page unchanged; anything unusable is no
picture, never a broken page."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.broker import MosquittoBroker
from station.api.pictures import MAX_PICTURE_BYTES, ProductPictures
from station.domain import Catalog, CatalogItem

from .conftest import (
    SHORT_ORDER,
    RunningStation,
    picture_png,
    run_station,
    with_cookbook_picture,
)


def catalog_of(**image_urls: str | None) -> Catalog:
    items = [
        CatalogItem(sku=sku.replace("__", "/"), name=sku, image_url=url)
        for sku, url in image_urls.items()
    ]
    return Catalog.from_lists(items, [])


def test_pictures_resolve_to_local_files_or_pass_remote_urls_through(tmp_path: Path) -> None:
    catalog_dir, pictures = tmp_path / "catalog", tmp_path / "pictures"
    catalog_dir.mkdir()
    pictures.mkdir()
    png = picture_png()
    (catalog_dir / "beside-the-catalog.png").write_bytes(png)
    (pictures / "named.jpg").write_bytes(png)
    (pictures / "BY-SKU.webp").write_bytes(png)
    (pictures / "KIT_A.png").write_bytes(png)  # SKU "KIT/A"
    (pictures / "NOTES.txt").write_bytes(b"not a picture")
    (pictures / "HUGE.png").write_bytes(b"\0" * (MAX_PICTURE_BYTES + 1))
    catalog = catalog_of(
        RELATIVE="named.jpg",
        FILE_URL=f"file://{pictures / 'named.jpg'}",
        REMOTE="https://images.example.com/r.jpg",
        GONE="missing.jpg",  # not there: falls back to <SKU>.<ext>, which is not there either
        BY_SKU=None,
        KIT__A=None,
        NOTES=None,
        HUGE=None,
        FTP="ftp://example.com/x.png",
    )
    catalog = Catalog.from_lists(
        [*catalog.items.values(), CatalogItem(sku="BY-SKU", name="by sku")], []
    )

    found = ProductPictures.find(catalog, catalog_dir, pictures)

    assert found.url("RELATIVE") == "/screen/picture?sku=RELATIVE"
    assert found.read("RELATIVE") == (png, "image/jpeg")
    assert found.read("FILE_URL") == (png, "image/jpeg")
    assert found.read("BY-SKU") == (png, "image/webp")
    assert found.url("KIT/A") == "/screen/picture?sku=KIT%2FA"
    assert found.read("KIT/A") == (png, "image/png")
    assert found.url("REMOTE") == "https://images.example.com/r.jpg"
    assert found.read("REMOTE") is None  # the page loads it itself, or shows none
    for unusable in ("GONE", "BY_SKU", "NOTES", "HUGE", "FTP", "NOT-IN-CATALOG"):
        assert found.url(unusable) is None and found.read(unusable) is None, unusable

    # Without a pictures_dir, a relative image_url is relative to the catalog file's folder.
    beside = ProductPictures.find(catalog_of(A="beside-the-catalog.png"), catalog_dir, None)
    assert beside.read("A") == (png, "image/png")
    # A pictures_dir that does not exist is no pictures, not a failed start.
    assert ProductPictures.find(catalog_of(A=None), catalog_dir, tmp_path / "nowhere").local == {}


def test_a_picture_removed_after_the_start_is_a_404_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "A.png").write_bytes(picture_png())
    found = ProductPictures.find(catalog_of(A=None), tmp_path, tmp_path)
    (tmp_path / "A.png").unlink()
    assert found.read("A") is None


@pytest.fixture
def pictured_station(tmp_path: Path, broker: MosquittoBroker) -> Iterator[RunningStation]:
    workdir = tmp_path / "station"
    yield from run_station(workdir, broker, **with_cookbook_picture(workdir))


def test_the_station_serves_the_missing_items_picture(pictured_station: RunningStation) -> None:
    station = pictured_station
    station.rig.write_manifest(SHORT_ORDER)
    station.pack_short("ORD-2001", "BOOK-COOK")
    code, screen = station.call("GET", "/api/screen")
    assert code == 200 and screen["verdict"]["outcome"] == "BLOCK", screen["verdict"]
    [book] = [line for line in screen["verdict"]["missing"] if line["sku"] == "BOOK-COOK"]
    assert book["image_url"] == "/screen/picture?sku=BOOK-COOK"
    with urllib.request.urlopen(station.base_url + book["image_url"], timeout=10) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.read() == picture_png()
    # The example catalog's mug picture is remote: handed to the page as it is.
    [mug] = [line for line in screen["carton"]["lines"] if line["sku"] == "MUG-BLUE"]
    assert mug["image_url"].startswith("https://")

    code, body = station.call("GET", "/screen/picture?sku=MUG-BLUE")
    assert code == 404 and "MUG-BLUE" in body["message"]
    code, body = station.call("GET", "/screen/picture")
    assert code == 400 and "sku" in body["message"]
