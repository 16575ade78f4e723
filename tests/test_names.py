"""The `@`-separated file-name format: real names from the datasets, bad names, and the round trip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cosplace_xs.data.names import ImageName, display_name, format_name, parse_name
from cosplace_xs.errors import BadFileNameError

# Real names from SF-XL / SF-XS and Tokyo-XS: empty fields, negative longitudes, zero padding, a prefix before
# the first '@', names that stop after the pano id, and a pano_id field that itself ends in ".jpg".
REAL_NAMES = (
    "@0544000.32@4177609.18@10@S@037.74472@-122.50057@NY0VsOD8K4d0YA9fd0CCGA@@0@@@@201708@@.jpg",
    "@0544000.34@4177604.74@10@S@037.74468@-122.50057@3sdIvmiydNtF1NxpTz5K0A@@0@@@@201104@@.jpg",
    "@0544401.60@4179659.50@10@S@037.76318@-122.49589@Ve9I6YTL5kabmmjwVqlQhg@@0@@@@201105@@.jpg",
    "@0547304.31@4176059.72@10@S@037.73059@-122.46317@4uSPwp01xNh3QIi4ncmjuA@@0@@@@201812@@.jpg",
    "@0551550.00@4182401.73@10@S@037.78752@-122.41454@3ULtJSmh4R9jlvluNLosdg@@0@@@@201104@@.jpg",
    "@0552300.93@4178405.47@10@S@037.75146@-122.40630@3hCMvCiolz1f-7zJQfEhCw@@0@@@@201412@@.jpg",
    "@0553602.37@4176200.31@10@S@037.73151@-122.39169@WN6pAtrhOkmBdL2HhY0v8w@@0@@@@200805@@.jpg",
    "@0549678.37@4180874.60@10@S@037.77386@-122.43590@bZ1VXzxFCSKi9wcz8H5pZA0@201311.jpg",
    "@0381904.46@3946329.36@54@S@035.65375@0139.69540@00399.jpg@@@@@@@@.jpg",
    "@0382351.18@3947183.09@54@S@035.66150@0139.70021@00171.jpg@@@@@@@@.jpg",
    "NIGHT@0381904.46@3946329.36@54@S@035.65375@0139.69540@00405.jpg@@@@@@@@.jpg",
    "NIGHT@0382063.64@3946397.80@54@S@035.65438@0139.69714@00417.jpg@@@@@@@@.jpg",
)


@pytest.mark.parametrize("name", REAL_NAMES)
def test_every_real_name_parses(name: str) -> None:
    parsed = parse_name(name)
    assert 300_000 < parsed.utm_east < 600_000 and 3_900_000 < parsed.utm_north < 4_200_000
    assert parsed.utm_zone_letter == "S"


def test_fields_of_an_sf_xl_name() -> None:
    parsed = parse_name("@0544000.32@4177609.18@10@S@037.74472@-122.50057@NY0VsOD8K4d0YA9fd0CCGA@@0@@@@201708@@.jpg",
                        require_heading=True)
    assert parsed == ImageName("", 544000.32, 4177609.18, 10, "S", 37.74472, -122.50057, "NY0VsOD8K4d0YA9fd0CCGA", "",
                               0.0, None, None, None, "201708", "")


def test_a_name_that_stops_after_the_pano_id_leaves_the_rest_empty() -> None:
    parsed = parse_name("@0549678.37@4180874.60@10@S@037.77386@-122.43590@bZ1VXzxFCSKi9wcz8H5pZA0@201311.jpg")
    assert (parsed.pano_id, parsed.tile_num, parsed.heading, parsed.timestamp) == (
        "bZ1VXzxFCSKi9wcz8H5pZA0", "201311", None, "")
    with pytest.raises(BadFileNameError, match="field 'heading' is empty"):
        parse_name("@0549678.37@4180874.60@10@S@037.77386@-122.43590@bZ1VXzxFCSKi9wcz8H5pZA0@201311.jpg",
                   require_heading=True)


def test_tokyo_names_keep_the_prefix_and_a_pano_id_ending_in_jpg() -> None:
    night = parse_name("NIGHT@0381904.46@3946329.36@54@S@035.65375@0139.69540@00405.jpg@@@@@@@@.jpg")
    assert (night.prefix, night.utm_east, night.utm_zone_number, night.lon, night.pano_id) == (
        "NIGHT", 381904.46, 54, 139.6954, "00405.jpg")
    assert parse_name("@0381904.46@3946329.36@54@S@035.65375@0139.69540@00399.jpg@@@@@@@@.jpg").prefix == ""


def test_only_the_file_name_is_split_not_the_folders() -> None:
    path = Path("/data/a@1@2/b@3") / "@0551550.00@4182401.73@10@S@@@@@90@@@@@@.JPG"
    parsed = parse_name(path, require_heading=True)
    assert (parsed.utm_east, parsed.utm_north, parsed.heading) == (551550.0, 4182401.73, 90.0)


@pytest.mark.parametrize(("name", "message"), [
    ("photo.jpg", "photo.jpg: not in the .* format"),
    ("@551550.0.jpg", "@551550.0.jpg: not in the .* format"),
    ("@@4182401.73@10@S@@@@@0@@@@@@.jpg", "field 'utm_east' is empty"),
    ("@551550.0@north@10@S@@@@@0@@@@@@.jpg", "field 'utm_north' is 'north', not a number"),
    ("@551550.0@4182401.73@ten@S@@@@@0@@@@@@.jpg", "field 'utm_zone_number' is 'ten'"),
    ("@551550.0@4182401.73@10@S@@@@@361@@@@@@.jpg", r"field 'heading' is 361.0, outside \[0, 360\]"),
    ("@551550.0@4182401.73@10@S@@@@@-1@@@@@@.jpg", r"field 'heading' is -1.0, outside \[0, 360\]"),
    ("@551550.0@4182401.73@10@S@@@@@0@@@@@@extra@.jpg", "has 15 '@'-separated fields, at most 14"),
])
def test_bad_names_are_errors_naming_the_file_and_the_field(name: str, message: str) -> None:
    with pytest.raises(BadFileNameError, match=message) as error:
        parse_name(Path("/data/train") / name)
    assert str(error.value).startswith(name + ":")


def test_heading_is_required_only_when_asked() -> None:
    name = "@551550.0@4182401.73@10@S@@@@@@@@@@@.jpg"
    assert parse_name(name).heading is None
    with pytest.raises(BadFileNameError, match=f"{name}: field 'heading' is empty; it must be a number"):
        parse_name(name, require_heading=True)


def test_headings_0_and_360_are_both_allowed() -> None:
    assert parse_name("@1.0@2.0@10@S@@@@@360@@@@@@.jpg").heading == 360.0
    assert parse_name("@1.0@2.0@10@S@@@@@0@@@@@@.jpg").heading == 0.0


def test_format_name_is_the_inverse_of_parse_name() -> None:
    image = ImageName("NIGHT", 551550.25, 4182401.75, 10, "S", 37.78752, -122.41454, "3ULtJSmh4R9jlvluNLosdg", "3",
                      275.5, 1.0, 0.0, 2.5, "201104", "n")
    name = format_name(image)
    assert name == "NIGHT@0551550.25@4182401.75@10@S@037.78752@-122.41454@3ULtJSmh4R9jlvluNLosdg@3@275.5@1@0@2.5" \
                   "@201104@n@.jpg"
    assert parse_name(name) == image
    real = REAL_NAMES[4]
    assert format_name(parse_name(real)) == real


STRICT_NUMBER_CASES = [  # (field, case id, name, message)
    ("utm_east", "549_069.19", "@549_069.19@4182401.73@10@S@@@@@0@@@@@@.jpg", "is '549_069.19', not a plain decimal"),
    ("utm_east", "spaces", "@ 549069.19 @4182401.73@10@S@@@@@0@@@@@@.jpg", "is ' 549069.19 ', not a plain decimal"),
    ("utm_east", "Arabic-Indic digits", "@\u0665\u0664\u0669069@4182401.73@10@S@@@@@0@@@@@@.jpg",
     "is '\u0665\u0664\u0669069', not a plain decimal"),
    ("utm_east", "exponent", "@5.5e5@4182401.73@10@S@@@@@0@@@@@@.jpg", "is '5.5e5', not a plain decimal"),
    ("utm_east", "inf", "@inf@4182401.73@10@S@@@@@0@@@@@@.jpg", "is 'inf', not a plain decimal"),
    ("utm_north", "nan", "@551550.0@nan@10@S@@@@@0@@@@@@.jpg", "is 'nan', not a plain decimal"),
    ("utm_north", "1e400 written out", "@551550.0@1" + "0" * 400 + "@10@S@@@@@0@@@@@@.jpg",
     r"is '1000.*0', outside \[-10000000, 10000000\] metres"),
    ("utm_east", "too far", "@-10000000.01@4182401.73@10@S@@@@@0@@@@@@.jpg",
     r"is '-10000000.01', outside \[-10000000, 10000000\] metres"),
    ("utm_zone_number", "a fraction", "@551550.0@4182401.73@10.7@S@@@@@0@@@@@@.jpg",
     r"is '10.7', not a UTM zone number \(an integer from 1 to 60\)"),
    ("utm_zone_number", "0", "@551550.0@4182401.73@0@S@@@@@0@@@@@@.jpg", "is '0', not a UTM zone number"),
    ("utm_zone_number", "61", "@551550.0@4182401.73@61@S@@@@@0@@@@@@.jpg", "is '61', not a UTM zone number"),
    ("utm_zone_letter", "I", "@551550.0@4182401.73@10@I@@@@@0@@@@@@.jpg",
     r"is 'I', not a UTM latitude band \(a capital letter C to X, without I and O\)"),
    ("utm_zone_letter", "lower case", "@551550.0@4182401.73@10@s@@@@@0@@@@@@.jpg", "is 's', not a UTM latitude band"),
    ("utm_zone_letter", "two letters", "@551550.0@4182401.73@10@SS@@@@@0@@@@@@.jpg", "is 'SS', not a UTM"),
    ("lat", "north of the pole", "@551550.0@4182401.73@10@S@90.5@-122.4@@@0@@@@@@.jpg",
     r"is '90.5', outside \[-90, 90\] degrees"),
    ("lon", "past the antimeridian", "@551550.0@4182401.73@10@S@37.7@-180.01@@@0@@@@@@.jpg",
     r"is '-180.01', outside \[-180, 180\] degrees"),
    ("pitch", "fullwidth digit", "@551550.0@4182401.73@10@S@@@@@0@\uff11@@@@@.jpg", "is '\uff11', not a plain decimal"),
]


@pytest.mark.parametrize(("field", "case", "name", "message"), STRICT_NUMBER_CASES,
                         ids=[f"{field} {case}" for field, case, _, _ in STRICT_NUMBER_CASES])
def test_only_plain_decimal_numbers_in_their_range_parse(field: str, case: str, name: str, message: str) -> None:
    with pytest.raises(BadFileNameError, match=f"field '{field}' {message}") as error:
        parse_name(Path("/data/train") / name)
    assert str(error.value).startswith(name + ":")


def test_the_limits_themselves_parse() -> None:
    parsed = parse_name("@-10000000@10000000.00@60@X@-90@180@@@0@@@@@@.jpg")
    assert (parsed.utm_east, parsed.utm_north, parsed.utm_zone_number, parsed.utm_zone_letter, parsed.lat,
            parsed.lon) == (-10_000_000.0, 10_000_000.0, 60, "X", -90.0, 180.0)
    parsed = parse_name("@+0.0@-0@01@C@90@-180.0@@@0@@@@@@.jpg")
    assert (parsed.utm_east, parsed.utm_north, parsed.utm_zone_number, parsed.utm_zone_letter, parsed.lat,
            parsed.lon) == (0.0, 0.0, 1, "C", 90.0, -180.0)


def test_a_name_that_is_not_utf8_is_a_bad_name_shown_with_its_bytes_escaped() -> None:
    name = os.fsdecode(b"caf\xe9@551550.0@4182401.73@10@S@@@@@0@@@@@@.jpg")
    with pytest.raises(BadFileNameError) as error:
        parse_name(Path("/data/train") / name)
    assert str(error.value) == ("caf\\xe9@551550.0@4182401.73@10@S@@@@@0@@@@@@.jpg: the file name is not valid UTF-8 "
                                "(the bytes shown as \\xNN); rename it")
    str(error.value).encode("utf-8")  # the message itself can be written to any log or file
    assert display_name(Path("/data") / os.fsdecode(b"\xff\xfe.jpg")) == "/data/\\xff\\xfe.jpg"
    assert display_name("/data/caf\u00e9.jpg") == "/data/caf\u00e9.jpg"


def test_format_name_writes_plain_decimals_that_parse_back() -> None:
    image = ImageName("", 0.5, 1.0, 10, "S", None, None, "", "", 0.00001, None, None, 1234567.0, "", "")
    name = format_name(image)
    assert name == "@0000000.50@0000001.00@10@S@@@@@0.00001@@@1234567@@@.jpg"
    assert parse_name(name) == image



def test_a_name_missing_its_north_names_the_zone_field_it_shifted_into() -> None:
    with pytest.raises(BadFileNameError, match="field 'utm_zone_number' is 'S', not a number"):
        parse_name("@203.0@10@S@@@@@0@@@@@@.jpg", require_heading=True)


def test_a_name_with_only_utm_east_and_north_the_downloaders_minimum_parses() -> None:
    parsed = parse_name("@551234.56@4181234.12@@@@@@@@@@@@@.jpg")
    assert (parsed.utm_east, parsed.utm_north, parsed.utm_zone_number, parsed.lat, parsed.lon) == (
        551234.56, 4181234.12, None, None, None)
    assert parse_name("@551234.56@4181234.12@.png").utm_north == 4181234.12


def test_empty_utm_fields_are_computed_from_lat_and_lon() -> None:
    # the utm package's documented example: 51.2 N, 7.5 E lies in zone 32U at 395201.31 E, 5673135.24 N
    parsed = parse_name("@@@@@51.2@7.5@@@@@@@@@.jpg")
    assert (round(parsed.utm_east, 2), round(parsed.utm_north, 2)) == (395201.31, 5673135.24)
    assert (parsed.utm_zone_number, parsed.utm_zone_letter, parsed.lat, parsed.lon) == (32, "U", 51.2, 7.5)


def test_lat_lon_south_of_the_equator_give_the_false_northing() -> None:
    # 0.5 S on the central meridian of zone 31 (3 E): east is the false easting, 500 km; north is the false
    # northing, 10,000 km, less k0 times the meridian arc of half a degree, 0.9996 x 55,287.2 m = 55,265.1 m
    parsed = parse_name("@@@@@-0.5@3.0@.jpg")
    assert (round(parsed.utm_east, 1), round(parsed.utm_north, 1), parsed.utm_zone_number) == (
        500000.0, 9944735.0, 31)


def test_utm_given_beside_lat_lon_is_kept_as_written() -> None:
    parsed = parse_name("@1.0@2.0@@@51.2@7.5@.jpg")
    assert (parsed.utm_east, parsed.utm_north, parsed.utm_zone_number) == (1.0, 2.0, None)


@pytest.mark.parametrize(("name", "message"), [
    ("@@@@@@7.5@.jpg", "field 'utm_east' is empty; it must be a number (or leave UTM east and north empty "
                       "and give lat and lon)"),
    ("@1.0@@@@51.2@7.5@.jpg", "field 'utm_north' is empty; it must be a number (or leave UTM east and north "
                              "empty and give lat and lon)"),
    ("@@@@@84.5@7.5@.jpg", "lat 84.5, lon 7.5 lie outside UTM (latitudes -80 to 84); give UTM east and north"),
])
def test_a_position_that_cannot_be_had_is_an_error_naming_the_field(name: str, message: str) -> None:
    with pytest.raises(BadFileNameError) as error:
        parse_name(name)
    assert str(error.value) == f"{name}: {message}"
