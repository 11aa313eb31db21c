"""A decoder's error text reaches the quarantine without the file's path or quoted values."""

from radreport.dicom.quiet import decoder_message


def test_a_decoders_message_loses_the_path_the_name_and_quoted_values():
    path = "/exports/DOE_JOHN/IM0001.dcm"
    text = (
        f"ValueError: unable to decode {path}: value 'DOE^JOHN' of \"Photometric\" "
        "is not supported (IM0001.dcm)"
    )
    assert decoder_message(text, path) == (
        "ValueError: unable to decode <file>: value '…' of '…' is not supported (<file>)"
    )
