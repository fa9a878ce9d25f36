"""Write ``IXI.xls``, the tiny demographics fixture of tests/test_datasets.py.

The layout copies the official IXI spreadsheet (Excel 97 BIFF, first sheet, one header row with
the real column names, dates as Excel dates, empty cells where a value is unknown); the values are
invented. Rows cover what the reader must handle: subject 13 appears twice, first without an age;
subject 12 appears twice with different ages (the first is kept); subject 15 has no age at all.

Needs ``xlwt`` (not a medzoo dependency): ``pip install xlwt && python make_ixi_xls.py``.
"""

import datetime
from pathlib import Path

import xlwt

HEADER = [
    "IXI_ID",
    "SEX_ID (1=m, 2=f)",
    "HEIGHT",
    "WEIGHT",
    "ETHNIC_ID",
    "MARITAL_ID",
    "OCCUPATION_ID",
    "QUALIFICATION_ID",
    "DOB",
    "DATE_AVAILABLE",
    "STUDY_DATE",
    "AGE",
]
# IXI_ID, SEX_ID, HEIGHT (cm), WEIGHT (kg), DOB, STUDY_DATE, AGE (years; None = empty cell)
ROWS = [
    (1, 1, 182, 79, datetime.date(1968, 2, 22), datetime.date(2005, 11, 18), 37.74),
    (2, 2, 164, 58, datetime.date(1946, 7, 26), datetime.date(2005, 6, 29), 58.93),
    (12, 1, 175, 70, datetime.date(1966, 8, 20), datetime.date(2005, 6, 4), 38.79),
    (12, 1, 175, 70, datetime.date(1966, 8, 20), datetime.date(2006, 6, 4), 39.79),
    (13, 2, 160, 61, datetime.date(1958, 9, 15), None, None),
    (13, 2, 160, 61, datetime.date(1958, 9, 15), datetime.date(2005, 6, 1), 46.71),
    (14, 1, 190, 90, datetime.date(1975, 1, 3), datetime.date(2005, 7, 8), 30.51),
    (15, 2, 170, 65, None, None, None),
]


def main() -> None:
    book = xlwt.Workbook()
    sheet = book.add_sheet("Table")
    dates = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for col, name in enumerate(HEADER):
        sheet.write(0, col, name)
    for row, (ixi_id, sex, height, weight, dob, study, age) in enumerate(ROWS, start=1):
        cells = {0: ixi_id, 1: sex, 2: height, 3: weight, 4: 1, 5: 2, 6: 1, 7: 5, 11: age}
        for col, value in cells.items():
            if value is not None:
                sheet.write(row, col, value)
        for col, value in ((8, dob), (9, study), (10, study)):
            if value is not None:
                sheet.write(row, col, value, dates)
    book.save(str(Path(__file__).with_name("IXI.xls")))


if __name__ == "__main__":
    main()
