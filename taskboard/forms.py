"""Forms: a task template's launch form, built from the template's parameters."""

from __future__ import annotations

import decimal
import math
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from taskboard.inputs import decimal_number_text, signed_whole_number
from taskboard.models import AlertRule, TaskTemplate
from taskboard.tracking.parameters import MAX_INT, OWNER_PARAMETER, Parameter, parameters_of
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


WHOLE_NUMBER_INVALID = gettext_lazy(
    "Enter a whole number using the digits 0-9 only (at most 18 of them)."
)
NUMBER_INVALID = gettext_lazy("Enter a number using the digits 0-9 only, e.g. 2.5.")
NOT_FINITE = gettext_lazy("Enter a finite number.")


class WholeNumberField(forms.IntegerField):
    """An integer typed in ASCII digits (an optional sign): not "٣", "1_000", "1.0" nor
    thousands of digits, all of which int() takes."""

    default_error_messages = {"invalid": WHOLE_NUMBER_INVALID}

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # an initial value
        number = signed_whole_number(str(value))
        if number is None or abs(number) > MAX_INT:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return number


class FiniteFloatField(forms.FloatField):
    """A finite float typed as a plain ASCII decimal number (no "nan", "inf", "1_000", "٣";
    "1e309" overflows: not finite)."""

    default_error_messages = {"invalid": NUMBER_INVALID}

    def to_python(self, value: Any) -> float | None:  # type: ignore[override]
        if value in self.empty_values:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        text = decimal_number_text(str(value))
        if text is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        number = float(text)
        if not math.isfinite(number):
            raise ValidationError(NOT_FINITE, code="finite")
        return number


class FiniteDecimalField(forms.DecimalField):
    """A Decimal typed as a plain ASCII decimal number (Decimal() also takes "NaN", "1_000"
    and other scripts' digits)."""

    default_error_messages = {"invalid": NUMBER_INVALID}

    def to_python(self, value: Any) -> decimal.Decimal | None:  # type: ignore[override]
        if value in self.empty_values:
            return None
        if isinstance(value, decimal.Decimal | int) and not isinstance(value, bool):
            return decimal.Decimal(value)
        text = decimal_number_text(str(value))
        if text is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        number: decimal.Decimal | None = super().to_python(text)
        return number


def _bounds(parameter: Parameter, *, as_decimal: bool = False) -> dict[str, Any]:
    """min_value / max_value of a numeric field from the parameter's declared bounds."""
    options: dict[str, Any] = {}
    for end, option in (("min", "min_value"), ("max", "max_value")):
        bound = parameter.get(end)
        if isinstance(bound, int | float) and not isinstance(bound, bool) and math.isfinite(bound):
            options[option] = decimal.Decimal(str(bound)) if as_decimal else bound
    return options


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
        return WholeNumberField(**options, **_bounds(parameter))
    if kind == "float":
        return FiniteFloatField(**options, **_bounds(parameter))
    if kind == "decimal":
        return FiniteDecimalField(**options, **_bounds(parameter, as_decimal=True))
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


class AlertSilenceForm(forms.Form):
    """Silence one rule (or every rule) until an end time, with a reason."""

    rule = forms.ModelChoiceField(
        queryset=AlertRule.objects.all(),
        required=False,
        empty_label=gettext_lazy("Every rule"),
        label=gettext_lazy("Rule"),
    )
    ends_at = forms.DateTimeField(
        label=gettext_lazy("Until"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=255, required=False)
