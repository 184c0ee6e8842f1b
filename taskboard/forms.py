"""Forms: a task template's launch form, built from the template's parameters."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from taskboard.models import TaskTemplate
from taskboard.tracking.parameters import OWNER_PARAMETER, Parameter, parameters_of
from taskboard.tracking.summaries import is_secret_name


class JSONInputField(forms.JSONField):
    """A JSON value entered as JSON text; no value shows as an empty box, not "null"."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class JSONOfTypeField(JSONInputField):
    """A JSON value that must be a list (or a dict), entered as JSON text."""

    def __init__(self, *, expected: type, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expected = expected

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value is None or isinstance(value, self.expected):
            return
        if self.expected is list:
            raise ValidationError(_("Enter a JSON list, e.g. [1, 2]."), code="invalid")
        raise ValidationError(_('Enter a JSON object, e.g. {"key": "value"}.'), code="invalid")


JSON_HELP = {
    "list": gettext_lazy("A JSON list, e.g. [1, 2]."),
    "dict": gettext_lazy('A JSON object, e.g. {"key": "value"}.'),
    "json": gettext_lazy('A JSON value: a number, "text", true, [a list] or {an object}.'),
}


def _field_for(parameter: Parameter, *, required: bool) -> forms.Field:
    kind = parameter["kind"]
    label = capfirst(parameter["name"].replace("_", " "))
    options: dict[str, Any] = {"required": required, "label": label}
    if kind == "int":
        return forms.IntegerField(**options)
    if kind == "float":
        return forms.FloatField(**options)
    if kind == "decimal":
        return forms.DecimalField(**options)
    if kind == "bool":
        if parameter.get("nullable"):
            return forms.NullBooleanField(**{**options, "required": False})
        return forms.BooleanField(**{**options, "required": False})
    if kind == "date":
        return forms.DateField(
            widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"), **options
        )
    if kind == "datetime":
        return forms.DateTimeField(
            widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            **options,
        )
    if kind in ("list", "dict"):
        return JSONOfTypeField(
            expected=list if kind == "list" else dict,
            widget=forms.Textarea(attrs={"rows": 2}),
            help_text=JSON_HELP[kind],
            **options,
        )
    if kind == "json":
        return JSONInputField(
            widget=forms.Textarea(attrs={"rows": 2}), help_text=JSON_HELP["json"], **options
        )
    if is_secret_name(parameter["name"]):
        return forms.CharField(widget=forms.PasswordInput(render_value=False), **options)
    return forms.CharField(strip=False, **options)


class TemplateLaunchForm(forms.Form):
    """One field per parameter of the template's task (its owner's `user_id` aside: the
    launcher owns the task), initially its default kwarg or the signature's default."""

    def __init__(self, *args: Any, template: TaskTemplate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.template = template
        defaults = template.default_kwargs if isinstance(template.default_kwargs, dict) else {}
        self.parameters: dict[str, Parameter] = {}
        for parameter in parameters_of(template.parameters):
            name = parameter["name"]
            if name == OWNER_PARAMETER:
                continue
            self.parameters[name] = parameter
            # A nullable parameter without a default must still be passed: empty means None.
            required = bool(parameter.get("required")) and not parameter.get("nullable")
            field = _field_for(parameter, required=required)
            if name in defaults:
                field.initial = defaults[name]
            elif "default" in parameter and parameter["default"] is not None:
                field.initial = parameter["default"]
            self.fields[name] = field

    def launch_kwargs(self) -> dict[str, Any]:
        """The kwargs to launch with (after is_valid()): an empty optional field is left
        out, so the task's own default applies."""
        kwargs: dict[str, Any] = {}
        for name, parameter in self.parameters.items():
            value = self.cleaned_data.get(name)
            if value is None or value == "":
                if parameter.get("required"):
                    kwargs[name] = None  # required and nullable: None is its value
                continue
            kwargs[name] = value
        return kwargs


class TaskTemplateAdminForm(forms.ModelForm[TaskTemplate]):
    """The admin's template form: default kwargs must be a JSON object of the task's
    parameters (when they are known)."""

    class Meta:
        model = TaskTemplate
        fields = "__all__"

    def clean_default_kwargs(self) -> dict[str, Any]:
        value = self.cleaned_data.get("default_kwargs")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ValidationError(_('Enter a JSON object, e.g. {"key": "value"}.'))
        known = {p["name"] for p in parameters_of(self.instance.parameters)}
        unknown = sorted(set(value) - known) if known else []
        if unknown:
            raise ValidationError(
                _("The task has no parameter named %(names)s.") % {"names": ", ".join(unknown)}
            )
        return value
