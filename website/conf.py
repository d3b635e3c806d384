"""Sphinx settings for the website of the series (`make site`; lenet5_series/publish.py stages it).

Sphinx + MyST-NB read the stored notebooks as they are, outputs included: nothing is executed.
Everything a page needs is served from the built folder: no script, font or style from elsewhere.
"""

project = "LeNet-5 in PyTorch"
author = "the LeNet-5 tutorial series"
copyright = "the LeNet-5 tutorial series, MIT licence"

extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["README.md", "_build", "**.ipynb_checkpoints"]

# Notebooks are shown with their stored outputs, never re-executed.
nb_execution_mode = "off"
nb_merge_streams = True
# Live widgets need a kernel. Their stored views are left out; an output that also carries a
# picture or text (the draw-a-digit canvas, a progress bar) shows that instead. And no widget
# script from a CDN.
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),
    ("html", "application/vnd.jupyter.widget-state+json", None),
]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = "LeNet-5 in PyTorch"
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,   # the .ipynb of each page, from this site
    "use_fullscreen_button": False,
    "navigation_with_keys": True,
}
html_show_sourcelink = False
html_copy_source = True            # the download button serves _sources/ from this site
html_last_updated_fmt = None
html_favicon = "favicon.png"      # a 5 drawn by lenet5_helpers.center_digit (a browser asks for one)
html_context = {"default_mode": "light"}
html_static_path = ["static"]
html_css_files = ["series.css"]
