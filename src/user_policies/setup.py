"""ament_python package user_policies: every `nodes/<name>.py` with a `main()` is an executable."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "user_policies"
HERE = Path(__file__).resolve().parent
NODES = sorted(
    f"{f.stem} = {PACKAGE}.nodes.{f.stem}:main"
    for f in (HERE / PACKAGE / "nodes").glob("*.py")
    if "\ndef main(" in f.read_text()
)

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["**/*.xml", "**/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="USER maintainers",
    maintainer_email="maintainers@user-robotics.org",
    description=(HERE / "package.xml").read_text().split("<description>")[1].split("</description>")[0],
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            *NODES,
        ]
    },
)
